/*-------------------------------------------------------------------------
 *
 * fdw_plan.c
 *		  Foreign tables in the planner: key conditions the index serves,
 *		  paths, path keys, costs, plans and EXPLAIN
 *
 * The index of a topic serves four accesses, and a scan of a foreign table
 * chooses among them by the conditions on its key:
 *
 *	- look-up: key = value, through the hash table, where the value is a
 *	  constant, a parameter or, in a parameterized path, a column of another
 *	  relation of a join: a nested loop then does one look-up per outer row;
 *	- look-ups: key = ANY (array) and key IN (...), sorted and distinct;
 *	- range: <, <=, >, >=, BETWEEN and prefixes (LIKE 'abc%', ^@,
 *	  starts_with), through the skip list;
 *	- full scan: every key.
 *
 * The skip list orders keys by their bytes: the order of bytea, and of
 * text under the "C" collation.  Comparisons of a text key are pushed down
 * only under that collation (text_pattern_ops comparisons, which compare
 * bytes, always), and only then do scans give path keys.  Equality and
 * prefixes compare bytes under every deterministic collation, so they are
 * pushed down under any of those.  Scans in key order, ascending or
 * descending, give path keys, so that ORDER BY key needs no sort, a LIMIT
 * reads few rows and merge joins are possible.  Conditions the index
 * decides alone leave the plan's quals; the others are checked again on
 * each row (a LIKE pattern past its fixed start, or known only at run
 * time), so every answer is the one a table would give.
 *
 * Row counts come from the live key count of the topic's index and widths
 * from its size, or from ANALYZE.  The topic is opened for reading, which
 * attaches it on this server if needed but never creates it in Kafka.
 *
 * Planner to executor: fdw_exprs holds the clauses the index serves, and
 * fdw_private the items of enum KvScanPrivateIndex (kvstore.h).
 *
 * IDENTIFICATION
 *		  src/fdw_plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#if PG_VERSION_NUM >= 180000
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#endif
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/selfuncs.h"
#include "utils/typcache.h"

#include "kvstore.h"

/* Cost of one look-up in the hash table, and of one seek in the skip list */
#define KV_LOOKUP_COST	(10 * cpu_operator_cost)
#define KV_SEEK_COST	(20 * cpu_operator_cost)

/* Cost of copying one entry out of the index */
#define KV_ROW_COST		(cpu_tuple_cost + cpu_operator_cost)

/* Bytes of an entry of the index that are not key or value */
#define KV_ENTRY_OVERHEAD 48

/* What the planner knows of a foreign table: baserel->fdw_private */
typedef struct KvRelInfo
{
	KvFdwTable *table;
	Var		   *key;			/* the key column */
	bool		ordered;		/* byte order is the key column's order */
	double		nkeys;			/* live keys in the index */
	List	   *conds;			/* KvCond of the restriction clauses */
	Bitmapset  *attrs;			/* columns read, offset as pull_varattnos */
} KvRelInfo;

/* A clause on the key that the index can serve */
typedef struct KvCond
{
	RestrictInfo *rinfo;
	KvCondKind	kind;
	int			argno;			/* the argument that is not the key */
	bool		exact;			/* the access alone decides the clause */
	Relids		outer;			/* other relations the argument reads */
} KvCond;

/* Items of a kvstore ForeignPath's fdw_private */
enum KvPathPrivateIndex
{
	KvPathPrivateAccess,		/* KvAccess, as an Integer */
	KvPathPrivateBackward,		/* descending order, as an Integer */
	KvPathPrivateJoin			/* a look-up by a join clause, as an Integer */
};

static bool collation_is_c(Oid collation);
static bool is_key(KvRelInfo *info, RelOptInfo *baserel, Node *node);
static bool usable_arg(PlannerInfo *root, RelOptInfo *baserel, Node *arg,
					   Relids *outer);
static bool classify(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info,
					 RestrictInfo *rinfo, KvCond *cond);
static KvAccess best_access(List *conds);
static List *choose_conds(List *conds, KvAccess access, List *join_clauses);
static bool decided(List *chosen, RestrictInfo *rinfo);
static List *local_rinfos(List *rinfos, List *chosen);
static double access_rows(PlannerInfo *root, RelOptInfo *baserel,
						  KvRelInfo *info, KvAccess access, List *chosen);
static void access_cost(PlannerInfo *root, RelOptInfo *baserel,
						KvRelInfo *info, KvAccess access, bool backward,
						double fetched, List *chosen, List *local,
						Cost *startup, Cost *total);
static List *key_pathkeys(PlannerInfo *root, RelOptInfo *baserel,
						  KvRelInfo *info, bool descending);
static ForeignPath *make_path(PlannerInfo *root, RelOptInfo *baserel,
							  double rows, Cost startup, Cost total,
							  List *pathkeys, Relids required_outer,
							  KvAccess access, bool backward, bool join);
static bool key_member_matches(PlannerInfo *root, RelOptInfo *rel,
							   EquivalenceClass *ec, EquivalenceMember *em,
							   void *arg);
static void add_join_paths(PlannerInfo *root, RelOptInfo *baserel,
						   KvRelInfo *info);
static void explain_access(ForeignScan *fsplan, ExplainState *es);

/* Whether a collation orders text by its bytes */
static bool
collation_is_c(Oid collation)
{
	if (!OidIsValid(collation))
		return false;
#if PG_VERSION_NUM >= 180000
	return pg_newlocale_from_collation(collation)->collate_is_c;
#else
	return lc_collate_is_c(collation);
#endif
}

/* Whether an expression is the key column of this relation */
static bool
is_key(KvRelInfo *info, RelOptInfo *baserel, Node *node)
{
	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node != NULL && IsA(node, Var) &&
		((Var *) node)->varno == baserel->relid &&
		((Var *) node)->varattno == info->table->key_attno &&
		((Var *) node)->varlevelsup == 0;
}

/*
 * Whether an argument can be computed before the scan reads a row: it
 * reads no column of this relation and changes nothing.  *outer gets the
 * other relations it reads.
 */
static bool
usable_arg(PlannerInfo *root, RelOptInfo *baserel, Node *arg, Relids *outer)
{
	Relids		varnos;

	if (contain_volatile_functions(arg) || contain_subplans(arg))
		return false;
	varnos = pull_varnos(root, arg);
	if (bms_is_member(baserel->relid, varnos))
		return false;
	*outer = varnos;
	return true;
}

/*
 * Whether the index can serve a clause, and how: fills *cond.
 *
 * Served: key = x, key = ANY (x), comparisons, starts_with(key, x),
 * key ^@ x, key LIKE x, the key on either side of a comparison.
 */
static bool
classify(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info,
		 RestrictInfo *rinfo, KvCond *cond)
{
	Expr	   *clause = rinfo->clause;
	bool		text = info->key->vartype == TEXTOID;
	bool		need_c = false;
	bool		need_deterministic = false;
	Oid			funcid;
	Oid			collid;
	Node	   *arg;
	int			argno;

	if (rinfo->pseudoconstant)
		return false;
	memset(cond, 0, sizeof(KvCond));
	cond->rinfo = rinfo;
	cond->exact = true;

	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;

		set_opfuncid(op);
		funcid = op->opfuncid;
		collid = op->inputcollid;
		if (is_key(info, baserel, linitial(op->args)))
			argno = 1;
		else if (is_key(info, baserel, lsecond(op->args)))
			argno = 0;
		else
			return false;
		arg = list_nth(op->args, argno);
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;

		if (!saop->useOr || list_length(saop->args) != 2 ||
			!is_key(info, baserel, linitial(saop->args)))
			return false;
		set_sa_opfuncid(saop);
		if (saop->opfuncid != F_TEXTEQ && saop->opfuncid != F_BYTEAEQ)
			return false;
		funcid = saop->opfuncid;
		collid = saop->inputcollid;
		argno = 1;
		arg = lsecond(saop->args);
		cond->kind = KV_COND_ANY;
	}
	else if (IsA(clause, FuncExpr))
	{
		FuncExpr   *fe = (FuncExpr *) clause;

		if (fe->funcid != F_STARTS_WITH || list_length(fe->args) != 2 ||
			!is_key(info, baserel, linitial(fe->args)))
			return false;
		funcid = fe->funcid;
		collid = fe->inputcollid;
		argno = 1;
		arg = lsecond(fe->args);
	}
	else
		return false;

	if (!usable_arg(root, baserel, arg, &cond->outer))
		return false;
	cond->argno = argno;

	switch (funcid)
	{
		case F_TEXTEQ:
		case F_BYTEAEQ:
			if (!IsA(clause, ScalarArrayOpExpr))
				cond->kind = KV_COND_EQ;
			need_deterministic = true;
			break;
		case F_TEXT_LT:
		case F_BYTEALT:
		case F_TEXT_PATTERN_LT:
			cond->kind = argno == 1 ? KV_COND_LT : KV_COND_GT;
			need_c = funcid == F_TEXT_LT;
			break;
		case F_TEXT_LE:
		case F_BYTEALE:
		case F_TEXT_PATTERN_LE:
			cond->kind = argno == 1 ? KV_COND_LE : KV_COND_GE;
			need_c = funcid == F_TEXT_LE;
			break;
		case F_TEXT_GT:
		case F_BYTEAGT:
		case F_TEXT_PATTERN_GT:
			cond->kind = argno == 1 ? KV_COND_GT : KV_COND_LT;
			need_c = funcid == F_TEXT_GT;
			break;
		case F_TEXT_GE:
		case F_BYTEAGE:
		case F_TEXT_PATTERN_GE:
			cond->kind = argno == 1 ? KV_COND_GE : KV_COND_LE;
			need_c = funcid == F_TEXT_GE;
			break;
		case F_STARTS_WITH:
			if (argno != 1)
				return false;
			cond->kind = KV_COND_PREFIX;
			need_deterministic = true;
			break;
		case F_TEXTLIKE:
		case F_BYTEALIKE:
			if (argno != 1)
				return false;
			cond->kind = KV_COND_LIKE;
			need_deterministic = true;
			if (IsA(arg, Const))
			{
				Const	   *c = (Const *) arg;
				bytea	   *pattern;
				char	   *prefix;
				int			prefixlen;

				if (c->constisnull)
					return false;
				pattern = DatumGetByteaPP(c->constvalue);
				cond->exact = KvFdwLikePrefix(VARDATA_ANY(pattern),
											  VARSIZE_ANY_EXHDR(pattern),
											  &prefix, &prefixlen);
				if (prefixlen == 0)
					return false;	/* '%abc': no use for the index */
			}
			else
				cond->exact = false;
			break;
		default:
			return false;
	}

	if (text && need_c && !collation_is_c(collid))
		return false;
	if (text && need_deterministic && OidIsValid(collid) &&
		!get_collation_isdeterministic(collid))
		return false;
	return true;
}

/* The best access the conditions of a relation allow */
static KvAccess
best_access(List *conds)
{
	bool		any = false;
	bool		range = false;
	ListCell   *lc;

	foreach(lc, conds)
	{
		KvCond	   *c = (KvCond *) lfirst(lc);

		if (c->kind == KV_COND_EQ)
			return KV_ACCESS_LOOKUP;
		if (c->kind == KV_COND_ANY)
			any = true;
		else
			range = true;
	}
	return any ? KV_ACCESS_LOOKUPS : range ? KV_ACCESS_RANGE : KV_ACCESS_FULL;
}

/*
 * The conditions an access serves: one equality (from join_clauses, for a
 * look-up by a join clause), one ANY, or every range and prefix.  The
 * paths and the plan choose with this one function.
 */
static List *
choose_conds(List *conds, KvAccess access, List *join_clauses)
{
	List	   *chosen = NIL;
	ListCell   *lc;

	foreach(lc, conds)
	{
		KvCond	   *c = (KvCond *) lfirst(lc);
		bool		own = bms_is_empty(c->outer);

		switch (access)
		{
			case KV_ACCESS_LOOKUP:
				if (c->kind == KV_COND_EQ &&
					(join_clauses != NIL ? list_member_ptr(join_clauses, c->rinfo) : own))
					return list_make1(c);
				break;
			case KV_ACCESS_LOOKUPS:
				if (c->kind == KV_COND_ANY && own)
					return list_make1(c);
				break;
			case KV_ACCESS_RANGE:
				if (c->kind != KV_COND_EQ && c->kind != KV_COND_ANY && own)
					chosen = lappend(chosen, c);
				break;
			case KV_ACCESS_FULL:
				break;
		}
	}
	return chosen;
}

/* Whether the chosen conditions decide a clause alone */
static bool
decided(List *chosen, RestrictInfo *rinfo)
{
	ListCell   *lc;

	foreach(lc, chosen)
	{
		KvCond	   *c = (KvCond *) lfirst(lc);

		if (c->rinfo == rinfo && c->exact)
			return true;
	}
	return false;
}

/* The clauses left to check on each row */
static List *
local_rinfos(List *rinfos, List *chosen)
{
	List	   *local = NIL;
	ListCell   *lc;

	foreach(lc, rinfos)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (!rinfo->pseudoconstant && !decided(chosen, rinfo))
			local = lappend(local, rinfo);
	}
	return local;
}

/* Rows an access reads from the index, before the clauses left */
static double
access_rows(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info,
			KvAccess access, List *chosen)
{
	List	   *rinfos = NIL;
	ListCell   *lc;
	KvCond	   *c;
	Node	   *array;

	switch (access)
	{
		case KV_ACCESS_LOOKUP:
			return 1;
		case KV_ACCESS_LOOKUPS:
			c = (KvCond *) linitial(chosen);
			array = (Node *) lsecond(((ScalarArrayOpExpr *) c->rinfo->clause)->args);
#if PG_VERSION_NUM >= 170000
			return clamp_row_est(Min(estimate_array_length(root, array), info->nkeys));
#else
			return clamp_row_est(Min(estimate_array_length(array), info->nkeys));
#endif
		case KV_ACCESS_RANGE:
			foreach(lc, chosen)
				rinfos = lappend(rinfos, ((KvCond *) lfirst(lc))->rinfo);
			return clamp_row_est(info->nkeys *
								 clauselist_selectivity(root, rinfos, baserel->relid,
														JOIN_INNER, NULL));
		case KV_ACCESS_FULL:
			break;
	}
	return clamp_row_est(info->nkeys);
}

/* Costs of an access that reads fetched rows and checks the clauses left */
static void
access_cost(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info,
			KvAccess access, bool backward, double fetched, List *chosen,
			List *local, Cost *startup, Cost *total)
{
	QualCost	qual;
	Cost		per_row;
	Cost		run;

	cost_qual_eval(&qual, local, root);
	per_row = KV_ROW_COST + qual.per_tuple + baserel->reltarget->cost.per_tuple;
	/* A step back is a seek from the top of the skip list */
	if (backward && access != KV_ACCESS_LOOKUPS)
		per_row += cpu_operator_cost * log(info->nkeys + 2.0) / log(2.0) / 4;
	*startup = qual.startup + baserel->reltarget->cost.startup;
	if (access == KV_ACCESS_LOOKUP)
		run = KV_LOOKUP_COST;
	else if (access == KV_ACCESS_LOOKUPS)
		run = fetched * KV_LOOKUP_COST;
	else
		run = KV_SEEK_COST;
	run += fetched * per_row;
	*total = *startup + run;
}

/*
 * The path keys of a scan in key order, or NIL: only when byte order is
 * the key column's order, and only when some clause or ordering of the
 * query uses the key (the planner made an equivalence class for it).
 */
static List *
key_pathkeys(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info,
			 bool descending)
{
	TypeCacheEntry *tce;
	Oid			opno;

	if (!info->ordered)
		return NIL;
	tce = lookup_type_cache(info->key->vartype, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
	opno = descending ? tce->gt_opr : tce->lt_opr;
	if (!OidIsValid(opno))
		return NIL;
#if PG_VERSION_NUM >= 160000
	return build_expression_pathkey(root, (Expr *) info->key, opno,
									baserel->relids, false);
#else
	return build_expression_pathkey(root, (Expr *) info->key, NULL, opno,
									baserel->relids, false);
#endif
}

/* A foreign path with our private items */
static ForeignPath *
make_path(PlannerInfo *root, RelOptInfo *baserel, double rows, Cost startup,
		  Cost total, List *pathkeys, Relids required_outer, KvAccess access,
		  bool backward, bool join)
{
	List	   *private = list_make3(makeInteger(access), makeInteger(backward),
									 makeInteger(join));

#if PG_VERSION_NUM >= 180000
	return create_foreignscan_path(root, baserel, NULL, rows, 0, startup, total,
								   pathkeys, required_outer, NULL, NIL, private);
#elif PG_VERSION_NUM >= 170000
	return create_foreignscan_path(root, baserel, NULL, rows, startup, total,
								   pathkeys, required_outer, NULL, NIL, private);
#else
	return create_foreignscan_path(root, baserel, NULL, rows, startup, total,
								   pathkeys, required_outer, NULL, private);
#endif
}

/*
 * kvGetForeignRelSize
 *		Read the table's options, classify the clauses on its key and
 *		estimate its rows from the topic's live key count.
 */
void
kvGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KvRelInfo  *info = palloc0(sizeof(KvRelInfo));
	Relation	rel = table_open(foreigntableid, NoLock);
	Form_pg_attribute att;
	KvTopicRef *ref;
	double		bytes;
	KvAccess	access;
	List	   *chosen;
	ListCell   *lc;

	info->table = KvFdwGetTable(rel);
	att = TupleDescAttr(RelationGetDescr(rel), info->table->key_attno - 1);
	info->key = makeVar(baserel->relid, info->table->key_attno, att->atttypid,
						att->atttypmod, att->attcollation, 0);
	info->ordered = att->atttypid == BYTEAOID || collation_is_c(att->attcollation);
	table_close(rel, NoLock);
	baserel->fdw_private = info;

	/* An estimate: read without the topic lock */
	ref = KvTopicOpen(info->table->topic, KV_OPEN_READ,
					  KvFdwConnection(info->table->serverid));
	info->nkeys = (double) ref->topic->index.nkeys;
	bytes = (double) ref->topic->index.bytes;

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &info->attrs);
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		KvCond		cond;

		pull_varattnos((Node *) rinfo->clause, baserel->relid, &info->attrs);
		if (classify(root, baserel, info, rinfo, &cond) && bms_is_empty(cond.outer))
			info->conds = lappend(info->conds, memcpy(palloc(sizeof(KvCond)), &cond,
													  sizeof(KvCond)));
	}

	baserel->tuples = info->nkeys;
	access = best_access(info->conds);
	chosen = choose_conds(info->conds, access, NIL);
	baserel->rows = access_rows(root, baserel, info, access, chosen) *
		clauselist_selectivity(root, local_rinfos(baserel->baserestrictinfo, chosen),
							   baserel->relid, JOIN_INNER, NULL);

	/* Without ANALYZE, the width of the entries the index holds */
	if (info->nkeys > 0 &&
		get_attavgwidth(foreigntableid, info->table->key_attno) == 0)
		baserel->reltarget->width = Max((int) (bytes / info->nkeys) - KV_ENTRY_OVERHEAD, 8);
}

/* Whether a member of an equivalence class is the key column */
static bool
key_member_matches(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				   EquivalenceMember *em, void *arg)
{
	return is_key((KvRelInfo *) arg, rel, (Node *) em->em_expr);
}

/*
 * Parameterized look-ups, one per set of other relations a clause
 * key = (their columns) reads: as the inner side of a nested loop, one
 * look-up per outer row.
 */
static void
add_join_paths(PlannerInfo *root, RelOptInfo *baserel, KvRelInfo *info)
{
	List	   *clauses = NIL;
	List	   *done = NIL;
	ListCell   *lc;

	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (join_clause_is_movable_to(rinfo, baserel))
			clauses = lappend(clauses, rinfo);
	}
	clauses = list_concat(clauses,
						  generate_implied_equalities_for_column(root, baserel,
																 key_member_matches,
																 info,
																 baserel->lateral_referencers));
	foreach(lc, clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		KvCond		cond;
		Relids		required_outer;
		ParamPathInfo *param_info;
		List	   *chosen;
		double		rows;
		Cost		startup;
		Cost		total;
		ListCell   *dc;
		bool		seen = false;

		if (!classify(root, baserel, info, rinfo, &cond) ||
			cond.kind != KV_COND_EQ || bms_is_empty(cond.outer))
			continue;
		required_outer = bms_union(cond.outer, baserel->lateral_relids);
		if (bms_overlap(required_outer, baserel->relids))
			continue;
		foreach(dc, done)
		{
			if (bms_equal((Relids) lfirst(dc), required_outer))
				seen = true;
		}
		if (seen)
			continue;
		done = lappend(done, required_outer);

		/* The plan chooses among the clauses of the path: so does this */
		param_info = get_baserel_parampathinfo(root, baserel, required_outer);
		chosen = NIL;
		foreach(dc, param_info->ppi_clauses)
		{
			RestrictInfo *pinfo = lfirst_node(RestrictInfo, dc);
			KvCond		pcond;

			if (classify(root, baserel, info, pinfo, &pcond))
				chosen = lappend(chosen, memcpy(palloc(sizeof(KvCond)), &pcond,
												sizeof(KvCond)));
		}
		chosen = choose_conds(chosen, KV_ACCESS_LOOKUP, param_info->ppi_clauses);
		if (chosen == NIL)
			continue;
		rows = clamp_row_est(clauselist_selectivity(root,
													local_rinfos(baserel->baserestrictinfo, NIL),
													baserel->relid, JOIN_INNER, NULL));
		access_cost(root, baserel, info, KV_ACCESS_LOOKUP, false, 1, chosen,
					local_rinfos(list_concat_copy(baserel->baserestrictinfo,
												  param_info->ppi_clauses), chosen),
					&startup, &total);
		add_path(baserel, (Path *) make_path(root, baserel, rows, startup, total,
											 NIL, required_outer,
											 KV_ACCESS_LOOKUP, false, true));
	}
}

/*
 * kvGetForeignPaths
 *		The path of the best access, in both key orders when it has one,
 *		and the parameterized look-ups of joins.
 */
void
kvGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KvRelInfo  *info = (KvRelInfo *) baserel->fdw_private;
	KvAccess	access = best_access(info->conds);
	List	   *chosen = choose_conds(info->conds, access, NIL);
	List	   *local = local_rinfos(baserel->baserestrictinfo, chosen);
	double		fetched = access_rows(root, baserel, info, access, chosen);
	List	   *pathkeys = NIL;
	Cost		startup;
	Cost		total;

	access_cost(root, baserel, info, access, false, fetched, chosen, local,
				&startup, &total);
	if (access != KV_ACCESS_LOOKUP)
		pathkeys = key_pathkeys(root, baserel, info, false);
	add_path(baserel, (Path *) make_path(root, baserel, baserel->rows, startup, total,
										 pathkeys, baserel->lateral_relids,
										 access, false, false));

	if (access != KV_ACCESS_LOOKUP &&
		(pathkeys = key_pathkeys(root, baserel, info, true)) != NIL)
	{
		access_cost(root, baserel, info, access, true, fetched, chosen, local,
					&startup, &total);
		add_path(baserel, (Path *) make_path(root, baserel, baserel->rows, startup,
											 total, pathkeys, baserel->lateral_relids,
											 access, true, false));
	}

	add_join_paths(root, baserel, info);
}

/*
 * kvGetForeignPlan
 *		The plan of a path: the clauses its access serves go to fdw_exprs,
 *		the others stay quals.
 */
ForeignScan *
kvGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				 ForeignPath *best_path, List *tlist, List *scan_clauses,
				 Plan *outer_plan)
{
	KvRelInfo  *info = (KvRelInfo *) baserel->fdw_private;
	KvAccess	access = (KvAccess) intVal(list_nth(best_path->fdw_private,
													KvPathPrivateAccess));
	bool		backward = intVal(list_nth(best_path->fdw_private,
										   KvPathPrivateBackward)) != 0;
	bool		join = intVal(list_nth(best_path->fdw_private, KvPathPrivateJoin)) != 0;
	List	   *conds = NIL;
	List	   *chosen;
	List	   *local = NIL;
	List	   *exprs = NIL;
	List	   *kinds = NIL;
	List	   *argnos = NIL;
	List	   *attrs = NIL;
	Bitmapset  *attrset = bms_copy(info->attrs);
	List	   *fdw_private;
	ListCell   *lc;
	int			attno;

	foreach(lc, scan_clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		KvCond		cond;

		if (classify(root, baserel, info, rinfo, &cond))
			conds = lappend(conds, memcpy(palloc(sizeof(KvCond)), &cond, sizeof(KvCond)));
	}
	chosen = choose_conds(conds, access,
						  join ? best_path->path.param_info->ppi_clauses : NIL);
	if (chosen == NIL)
		access = KV_ACCESS_FULL;	/* every clause stays a qual */

	foreach(lc, local_rinfos(scan_clauses, chosen))
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		local = lappend(local, rinfo->clause);
		pull_varattnos((Node *) rinfo->clause, baserel->relid, &attrset);
	}
	foreach(lc, chosen)
	{
		KvCond	   *c = (KvCond *) lfirst(lc);

		exprs = lappend(exprs, c->rinfo->clause);
		kinds = lappend_int(kinds, c->kind);
		argnos = lappend_int(argnos, c->argno);
	}

	/* The columns read; a whole-row reference reads them all */
	attno = -1;
	while ((attno = bms_next_member(attrset, attno)) >= 0)
	{
		AttrNumber	a = attno + FirstLowInvalidHeapAttributeNumber;

		if (a == InvalidAttrNumber)
		{
			attrs = NIL;
			for (int i = 1; i <= info->table->natts; i++)
				attrs = lappend_int(attrs, i);
			break;
		}
		if (a > 0)
			attrs = lappend_int(attrs, a);
	}

	fdw_private = list_make5(KvFdwTableToList(info->table), makeInteger(access),
							 makeInteger(backward), kinds, argnos);
	fdw_private = lappend(fdw_private, attrs);
	return make_foreignscan(tlist, local, baserel->relid, exprs, fdw_private,
							NIL, NIL, outer_plan);
}

/* The access of a scan, and the key clauses it serves */
static void
explain_access(ForeignScan *fsplan, ExplainState *es)
{
	List	   *private = fsplan->fdw_private;
	KvAccess	access = (KvAccess) intVal(list_nth(private, KvScanPrivateAccess));
	bool		backward = intVal(list_nth(private, KvScanPrivateBackward)) != 0;
	List	   *kinds = (List *) list_nth(private, KvScanPrivateKinds);
	const char *name = "full scan";
	ListCell   *lc;

	if (access == KV_ACCESS_LOOKUP)
		name = "key look-up";
	else if (access == KV_ACCESS_LOOKUPS)
		name = "key look-ups";
	else if (access == KV_ACCESS_RANGE)
	{
		name = "key prefix";
		foreach(lc, kinds)
		{
			if (lfirst_int(lc) != KV_COND_PREFIX && lfirst_int(lc) != KV_COND_LIKE)
				name = "key range";
		}
	}
	ExplainPropertyText("Access",
						backward ? psprintf("%s, descending", name) : name, es);
	if (fsplan->fdw_exprs != NIL)
	{
		List	   *context = set_deparse_context_plan(es->deparse_cxt,
													   (Plan *) fsplan, NIL);
		List	   *shown = NIL;

		/*
		 * Show each comparison with the key on the left, as the scan reads
		 * it; the planner may hand a join clause over either way round,
		 * and differently in different PostgreSQL versions.
		 */
		foreach(lc, fsplan->fdw_exprs)
		{
			Node	   *clause = (Node *) lfirst(lc);

			if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2 &&
				!IsA(strip_implicit_coercions(linitial(((OpExpr *) clause)->args)), Var) &&
				IsA(strip_implicit_coercions(lsecond(((OpExpr *) clause)->args)), Var) &&
				OidIsValid(get_commutator(((OpExpr *) clause)->opno)))
			{
				OpExpr	   *commuted = (OpExpr *) copyObject(clause);

				CommuteOpExpr(commuted);
				clause = (Node *) commuted;
			}
			shown = lappend(shown, clause);
		}
		ExplainPropertyText("Key Cond",
							deparse_expression((Node *) make_ands_explicit(shown),
											   context, es->verbose, false),
							es);
	}
	if (es->verbose)
		ExplainPropertyText("Topic",
							strVal(list_nth((List *) list_nth(private, KvScanPrivateTable), 1)),
							es);
}

/*
 * kvExplainForeignScan
 *		Say which access the scan uses, and the key clauses it serves.
 */
void
kvExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	explain_access((ForeignScan *) node->ss.ps.plan, es);
}

/*
 * kvAddForeignUpdateTargets
 *		UPDATE and DELETE find their rows by key: ask the scan for it.
 *
 * A DELETE with RETURNING also asks for the whole row, which it returns.
 */
void
kvAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
						  RangeTblEntry *target_rte, Relation target_relation)
{
	KvFdwTable *table = KvFdwGetTable(target_relation);
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(target_relation),
										  table->key_attno - 1);

	add_row_identity_var(root, makeVar(rtindex, table->key_attno, att->atttypid,
									   att->atttypmod, att->attcollation, 0),
						 rtindex, KV_KEY_JUNK);
	if (root->parse->commandType == CMD_DELETE && root->parse->returningList != NIL)
		add_row_identity_var(root, makeVar(rtindex, InvalidAttrNumber, RECORDOID,
										   -1, InvalidOid, 0),
							 rtindex, "wholerow");
}

/*
 * kvPlanForeignModify
 *		An INSERT, UPDATE or DELETE needs the table's options only.
 */
List *
kvPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
					Index resultRelation, int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);
	Relation	rel = table_open(rte->relid, NoLock);
	KvFdwTable *table = KvFdwGetTable(rel);

	table_close(rel, NoLock);
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT with ON CONFLICT is not supported on foreign table \"%s\"",
						table->name),
				 errdetail("An INSERT into a kvstore foreign table writes its key whether or not the key exists.")));
	return list_make1(KvFdwTableToList(table));
}

/*
 * kvPlanDirectModify
 *		A DELETE whose rows the index decides alone (no clause left to
 *		check, no RETURNING) writes its tombstones from the scan: no row
 *		goes through the executor.
 */
bool
kvPlanDirectModify(PlannerInfo *root, ModifyTable *plan,
				   Index resultRelation, int subplan_index)
{
	Plan	   *subplan = outerPlan(plan);
	ForeignScan *fscan;

	if (plan->operation != CMD_DELETE || plan->returningLists != NIL)
		return false;
	if (IsA(subplan, Append))
	{
		Append	   *append = (Append *) subplan;

		if (subplan_index >= list_length(append->appendplans))
			return false;
		subplan = (Plan *) list_nth(append->appendplans, subplan_index);
	}
	if (!IsA(subplan, ForeignScan))
		return false;
	fscan = (ForeignScan *) subplan;
	if (fscan->scan.scanrelid != resultRelation || fscan->scan.plan.qual != NIL)
		return false;

	fscan->operation = CMD_DELETE;
	fscan->resultRelation = resultRelation;
	fscan->fdw_private = lappend(list_copy(fscan->fdw_private),
								 makeInteger(plan->canSetTag));
	return true;
}

/*
 * kvExplainForeignModify
 *		The topic written, and the batch size of an INSERT.
 */
void
kvExplainForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					   List *fdw_private, int subplan_index, ExplainState *es)
{
	List	   *table = (List *) list_nth(fdw_private, KvModifyPrivateTable);

	if (es->verbose)
	{
		ExplainPropertyText("Topic", strVal(list_nth(table, 1)), es);
		if (rinfo->ri_BatchSize > 1)
			ExplainPropertyInteger("Batch Size", NULL, rinfo->ri_BatchSize, es);
	}
}

/*
 * kvExplainDirectModify
 *		The access a direct DELETE finds its keys with.
 */
void
kvExplainDirectModify(ForeignScanState *node, ExplainState *es)
{
	explain_access((ForeignScan *) node->ss.ps.plan, es);
}
