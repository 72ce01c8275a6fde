# KvstoreLoad: a load checker for kvstore's TAP tests.
#
# A load is N client sessions, each a forked process with its own
# connection (DBD::Pg), writing keys of its own with increasing versions
# while a test breaks things around them.  Every key of a session is
# written once per pass, the pass number being the version, and every
# value names its key and version ("<key>=<version>;" and padding).  Each
# session logs every write it made: acknowledged (the statement returned
# success) or failed, with its SQLSTATE, message and duration.  A session
# whose connection is lost connects again, polling, until it is stopped.
#
# Afterwards verify() waits on every server until it has applied the
# whole topic (kv_sync), then checks that every acknowledged write is
# present at its last acknowledged version or later on every server, that
# no value was invented (no version beyond the last one attempted), that
# all servers hold the same data (kv_checksum equal at the same applied
# offset), and that the topic's log, read back with kcat, agrees with what
# each statement said: every acknowledged write is in it, and no write
# whose error said it was not stored.  It reports the acknowledged, failed
# and lost counts with diag and asserts that none is lost.
#
# Write methods, chosen in turn for each group of keys:
#   put       one kv_put per key
#   put_many  one kv_put_many per group, one Kafka transaction
#   rollback  one kv_put per key inside a transaction that is rolled back:
#             acknowledged when kv_put returned, so it must stay
#   insert    one INSERT of the group into a foreign table over the topic;
#             used when the extension provides the kvstore foreign-data
#             wrapper (see table_ddl below), unless methods are given
#
#   my $load = KvstoreLoad->new(topic => $t, nodes => [$a, $b], sessions => 4);
#   $load->start;
#   $load->wait_acked(200);         # poll until 200 more writes succeeded
#   ... stop a broker, kill a process ...
#   $load->stop;
#   my $r = $load->verify('broker restart');

package KvstoreLoad;

use strict;
use warnings;

use DBI;
use KvstoreTest;
use POSIX ();
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Utils;
use Test::More;

my $load_serial = 0;

# A load; see the options below
sub new
{
	my ($class, %opts) = @_;
	my $self = {
		topic => $opts{topic} // die('topic is required'),
		nodes => $opts{nodes} // die('nodes is required'),    # sessions go round them
		sessions => $opts{sessions} // 4,                    # sessions in all
		keys => $opts{keys} // 40,                           # keys per session
		group => $opts{group} // 10,                         # keys per batch
		pad => $opts{pad} // 0,                              # extra value bytes
		methods => $opts{methods},                           # default: see start
		settings => $opts{settings} // {},                   # SET for each session
		label => $opts{label} // sprintf('l%d_%d', $$, ++$load_serial),
		pids => [],
	};
	$self->{dir} = PostgreSQL::Test::Utils::tempdir("load_$self->{label}");
	return bless $self, $class;
}

# The statements that make a foreign table over the load's topic, or none
# when the extension has no foreign-data wrapper.  This is the one place
# that knows how a foreign table is declared.
sub table_ddl
{
	my ($self, $node) = @_;
	my $has_fdw = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'kvstore'");
	return () unless $has_fdw;
	my $table = "load_$self->{label}";
	return (
		"CREATE SERVER IF NOT EXISTS kvstore_load FOREIGN DATA WRAPPER kvstore",
		"CREATE FOREIGN TABLE IF NOT EXISTS $table (key text COLLATE \"C\", value text) "
		  . "SERVER kvstore_load OPTIONS (topic '$self->{topic}')");
}

# Start the sessions; returns at once
sub start
{
	my ($self) = @_;

	# The methods: the functions, and the foreign table where there is one
	if (!$self->{methods})
	{
		$self->{methods} = [ 'put', 'put_many', 'rollback' ];
		my @ddl = $self->table_ddl($self->{nodes}[0]);
		push @{ $self->{methods} }, 'insert' if @ddl;
	}
	if (grep { $_ eq 'insert' } @{ $self->{methods} })
	{
		for my $node (@{ $self->{nodes} })
		{
			my @ddl = $self->table_ddl($node);
			die 'the insert method needs the kvstore foreign-data wrapper' unless @ddl;
			$node->safe_psql('postgres', join(";\n", @ddl));
		}
	}

	unlink "$self->{dir}/stop";
	for my $s (0 .. $self->{sessions} - 1)
	{
		my $node = $self->{nodes}[ $s % @{ $self->{nodes} } ];
		my $pid = fork();
		die "fork failed: $!" unless defined $pid;
		if ($pid == 0)
		{
			# The child must not run the test's END blocks (they stop the
			# servers), nor report TAP results
			my $rc = eval { $self->session_loop($s, $node); 1 } ? 0 : 1;
			if ($rc)
			{
				(my $error = $@) =~ s/\s+/ /g;
				open my $fh, '>>', "$self->{dir}/session$s.log";
				print $fh "E\t$error\n";
				close $fh;
			}
			POSIX::_exit($rc);
		}
		push @{ $self->{pids} }, $pid;
	}
	$self->{started} = time;
	return $self;
}

# The connection string of a node, naming the session
sub dsn
{
	my ($node, $s) = @_;
	return sprintf('dbi:Pg:dbname=postgres;host=%s;port=%d;application_name=kvload%d',
		$node->host, $node->port, $s);
}

# One session: connect, write pass after pass until the stop file appears
sub session_loop
{
	my ($self, $s, $node) = @_;
	my $topic = $self->{topic};
	my @keys = map { sprintf('%s.s%d.k%04d', $self->{label}, $s, $_) } 1 .. $self->{keys};
	my @methods = @{ $self->{methods} };
	my $table = "load_$self->{label}";
	my $stopfile = "$self->{dir}/stop";
	open my $log, '>', "$self->{dir}/session$s.log" or die "cannot write the log: $!";
	$log->autoflush(1);

	my $dbh;
	my $outage = 0;    # connection attempts that failed in a row
	my $connect = sub {
		until (-e $stopfile)
		{
			$dbh = DBI->connect(dsn($node, $s), undef, undef,
				{ AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0 });
			if ($dbh)
			{
				my $ok = 1;
				for my $name (sort keys %{ $self->{settings} })
				{
					$ok &&= $dbh->do("SET $name = '$self->{settings}{$name}'");
				}
				if ($ok)
				{
					print $log "C\t$outage\n" if $outage;
					$outage = 0;
					return 1;
				}
				$dbh->disconnect;
				$dbh = undef;
			}
			$outage++;
			usleep(50_000);
		}
		return 0;
	};

	my $pass = 0;
	while (!-e $stopfile)
	{
		$pass++;
		my @groups;
		for (my $i = 0; $i < @keys; $i += $self->{group})
		{
			my $last = $i + $self->{group} - 1;
			$last = $#keys if $last > $#keys;
			push @groups, [ @keys[ $i .. $last ] ];
		}
		for my $g (0 .. $#groups)
		{
			my $method = $methods[ ($g + $pass) % @methods ];
			my @units =
			  $method =~ /^(put|rollback)$/ ? (map { [$_] } @{ $groups[$g] }) : ($groups[$g]);
			for my $unit (@units)
			{
				last if -e $stopfile;
				if (!$dbh)
				{
					last unless $connect->();
				}
				my @vals = map { "$_=$pass;" . ('x' x $self->{pad}) } @$unit;
				my ($sql, @bind);
				if ($method eq 'put' || $method eq 'rollback')
				{
					($sql, @bind) = ('SELECT kv_put($1, $2, $3)', $topic, $unit->[0], $vals[0]);
				}
				elsif ($method eq 'put_many')
				{
					($sql, @bind) = ('SELECT kv_put_many($1, $2, $3)', $topic, $unit, \@vals);
				}
				elsif ($method eq 'insert')
				{
					$sql = "INSERT INTO $table (key, value) VALUES "
					  . join(', ', map { '(?, ?)' } @$unit);
					@bind = map { ($unit->[$_], $vals[$_]) } 0 .. $#$unit;
				}
				else
				{
					die "unknown method $method";
				}
				my $t0 = time;
				$dbh->begin_work if $method eq 'rollback';
				my $ok = $dbh->do($sql, undef, @bind);
				my $ms = int((time - $t0) * 1000);
				my $state = $dbh->state || '?????';
				(my $msg = $dbh->errstr // '') =~ s/\s+/ /g;
				# Kafka has the write once kv_put returned: ROLLBACK keeps it
				$dbh->rollback if $method eq 'rollback' && !$dbh->{AutoCommit};
				my $keys = join(',', @$unit);
				if (defined $ok)
				{
					printf $log "A\t%.3f\t%s\t%d\t%d\t\t%s\t\n", $t0, $method, $ms, $pass, $keys;
				}
				else
				{
					printf $log "F\t%.3f\t%s\t%d\t%d\t%s\t%s\t%s\n", $t0, $method, $ms, $pass,
					  $state, $keys, $msg;
					# A lost connection is made again before the next write
					if (!$dbh->ping)
					{
						$dbh->disconnect;
						$dbh = undef;
					}
				}
			}
		}
	}
	$dbh->disconnect if $dbh;
	close $log;
	return;
}

# Read the session logs: every write, and a summary
sub results
{
	my ($self) = @_;
	my %r = (
		acked => 0,            # key writes acknowledged
		failed => 0,           # key writes failed
		statements_failed => 0,
		by_state => {},        # failed statements by SQLSTATE
		last_acked => {},      # key => last acknowledged version
		last_tried => {},      # key => last version attempted
		max_fail_ms => 0,
		failures => [],        # [method, ms, version, state, message]
		outages => 0,          # connection attempts that failed
		errors => [],          # sessions that died
		acked_statements => 0,
		acked_writes => [],    # [version, keys] of each acknowledged statement
	);
	for my $s (0 .. $self->{sessions} - 1)
	{
		my $file = "$self->{dir}/session$s.log";
		next unless -e $file;
		open my $fh, '<', $file or die "cannot read $file: $!";
		while (my $line = <$fh>)
		{
			chomp $line;
			if ($line =~ /^C\t(\d+)$/)
			{
				$r{outages} += $1;
				next;
			}
			if ($line =~ /^E\t(.*)$/)
			{
				push @{ $r{errors} }, "session $s: $1";
				next;
			}
			my ($kind, $ts, $method, $ms, $version, $state, $keys, $msg) = split /\t/, $line, 8;
			next unless defined $keys;    # a line cut short by a kill
			my @keys = split /,/, $keys;
			for my $key (@keys)
			{
				$r{last_tried}{$key} = $version
				  if ($r{last_tried}{$key} // 0) < $version;
			}
			if ($kind eq 'A')
			{
				push @{ $r{acked_writes} }, [ $version, \@keys ];
				$r{acked} += @keys;
				$r{acked_statements}++;
				for my $key (@keys)
				{
					$r{last_acked}{$key} = $version
					  if ($r{last_acked}{$key} // 0) < $version;
				}
			}
			elsif ($kind eq 'F')
			{
				$r{failed} += @keys;
				$r{statements_failed}++;
				$r{by_state}{$state}++;
				$r{max_fail_ms} = $ms if $ms > $r{max_fail_ms};
				push @{ $r{failures} },
				  [ $method, $ms, $version, $state, $msg, $self->phase($ts), \@keys ];
			}
		}
		close $fh;
	}
	return \%r;
}

# Name the phase of the load from now on (for the failure report)
sub mark
{
	my ($self, $phase) = @_;
	push @{ $self->{marks} }, [ time, $phase ];
	return;
}

# The phase a time falls in
sub phase
{
	my ($self, $ts) = @_;
	my $phase = 'start';
	for my $m (@{ $self->{marks} // [] })
	{
		$phase = $m->[1] if $ts >= $m->[0];
	}
	return $phase;
}

# Statements acknowledged so far
sub acked_statements
{
	my ($self) = @_;
	return $self->results->{acked_statements};
}

# Poll until n more statements than now have been acknowledged
sub wait_acked
{
	my ($self, $n, $timeout) = @_;
	my $target = $self->acked_statements + $n;
	return $self->poll(sub { $self->acked_statements >= $target },
		$timeout, "$n more acknowledged writes");
}

# Poll until n more statements than now have failed
sub wait_failed
{
	my ($self, $n, $timeout) = @_;
	my $target = $self->results->{statements_failed} + $n;
	return $self->poll(sub { $self->results->{statements_failed} >= $target },
		$timeout, "$n more failed writes");
}

# Poll for a condition; dies with what it waited for after timeout seconds
sub poll
{
	my ($self, $cond, $timeout, $what) = @_;
	my $deadline = time + ($timeout // $PostgreSQL::Test::Utils::timeout_default);
	until ($cond->())
	{
		die "timed out waiting for $what" if time > $deadline;
		usleep(50_000);
	}
	return 1;
}

# Stop the sessions: each finishes the write it is making
sub stop
{
	my ($self) = @_;
	open my $fh, '>', "$self->{dir}/stop" or die;
	close $fh;
	for my $pid (@{ $self->{pids} })
	{
		waitpid($pid, 0);
	}
	$self->{pids} = [];
	$self->{seconds} = time - $self->{started};
	return $self;
}

# The node's keys of this load and their versions, after kv_sync
sub read_node
{
	my ($self, $node) = @_;
	my $topic = $self->{topic};
	my $out = $node->safe_psql('postgres',
		"SELECT kv_sync('$topic');\n"
		  . "SELECT key, value FROM kv_scan('$topic', '$self->{label}.')");
	my @lines = split /\n/, $out;
	shift @lines;    # the kv_sync offset
	my %seen;
	for my $line (@lines)
	{
		my ($key, $value) = split /\|/, $line, 2;
		$seen{$key} = $value;
	}
	return \%seen;
}

# Check every server; returns the results with the lost count.  Asserts
# that nothing acknowledged is lost, nothing invented, and that the
# servers hold the same data.
sub verify
{
	my ($self, $scenario, %opts) = @_;
	my $servers = $opts{servers} // $self->{nodes};
	my $topic = $self->{topic};
	my $r = $self->results;

	is(scalar(@{ $r->{errors} }), 0, "$scenario: every session ran to its end")
	  or diag(join("\n", @{ $r->{errors} }));

	my ($lost, $invented) = (0, 0);
	my @examples;
	for my $i (0 .. $#$servers)
	{
		my $seen = $self->read_node($servers->[$i]);
		for my $key (sort keys %{ $r->{last_tried} })
		{
			my $value = $seen->{$key};
			my $version;
			if (defined $value)
			{
				if ($value =~ /^\Q$key\E=(\d+);x*$/)
				{
					$version = $1;
				}
				else
				{
					$invented++;
					push @examples, "server $i: $key has the foreign value '$value'";
					next;
				}
			}
			my $acked = $r->{last_acked}{$key};
			if (defined $acked && (!defined $version || $version < $acked))
			{
				$lost++;
				push @examples, "server $i: $key acknowledged at version $acked, reads "
				  . ($version // 'nothing');
			}
			if (defined $version && $version > $r->{last_tried}{$key})
			{
				$invented++;
				push @examples, "server $i: $key at version $version, never written";
			}
		}
		for my $key (keys %$seen)
		{
			next if exists $r->{last_tried}{$key};
			$invented++;
			push @examples, "server $i: key $key was never written";
		}
	}
	$r->{lost} = $lost;

	my $states = join(', ', map { "$_ x$r->{by_state}{$_}" } sort keys %{ $r->{by_state} });
	diag(
		sprintf(
			'%s: %d writes acknowledged, %d failed (%d statements%s), %d lost; '
			  . '%d sessions on %d servers, %.0f s, slowest failure %d ms',
			$scenario, $r->{acked}, $r->{failed}, $r->{statements_failed},
			$states ? ": $states" : '', $lost, $self->{sessions},
			scalar(@$servers), $self->{seconds} // 0, $r->{max_fail_ms}));
	diag("  $_") for $self->failure_kinds($r);
	cmp_ok($r->{acked}, '>', 0, "$scenario: writes were acknowledged");
	is($lost, 0, "$scenario: no acknowledged write is lost, on any server")
	  or diag(join("\n", @examples[ 0 .. ($#examples < 20 ? $#examples : 19) ]));
	is($invented, 0, "$scenario: no server holds a value that was never written")
	  or diag(join("\n", @examples[ 0 .. ($#examples < 20 ? $#examples : 19) ]));

	$self->check_converged($scenario, $servers);
	$self->check_log($scenario, $servers->[0], $r);
	return $r;
}

# The records of the load in the topic's log, read_committed, as a set of
# "key=version"
sub read_log
{
	my ($self, $node) = @_;
	my $brokers = $node->safe_psql('postgres', 'SHOW kvstore.brokers');
	my %log;
	for my $line (split /\n/, kv_kcat_consume($self->{topic}, 'read_committed', $brokers))
	{
		$log{"$1=$2"} = 1 if $line =~ /^\d+ (\Q$self->{label}\E\.[^=]+)=\1=(\d+);/;
	}
	return \%log;
}

# What the log holds agrees with what each statement said: every
# acknowledged write is in it, and no write whose error said it was not
# stored (an aborted kv_put_many, a record never sent) is in it
sub check_log
{
	my ($self, $scenario, $node, $r) = @_;
	my $log = $self->read_log($node);
	my ($missing, $untrue, $stored_unknown) = (0, 0, 0);
	my @examples;
	for my $w (@{ $r->{acked_writes} })
	{
		for my $key (@{ $w->[1] })
		{
			next if $log->{"$key=$w->[0]"};
			$missing++;
			push @examples, "acknowledged $key=$w->[0] is not in the log";
		}
	}
	for my $f (@{ $r->{failures} })
	{
		my ($method, $version, $msg, $keys) = @$f[ 0, 2, 4, 6 ];
		my $in = grep { $log->{"$_=$version"} } @$keys;
		if ($msg =~ /did not store the write|none of its records is stored/)
		{
			next unless $in;
			$untrue++;
			push @examples, "$method of $keys->[0] ($version) failed saying it was not stored, "
			  . "and $in of its " . scalar(@$keys) . " records are in the log: $msg";
		}
		elsif ($msg =~ /was acknowledged by Kafka at offset/)
		{
			next if $in == @$keys;
			$untrue++;
			push @examples, "$method of $keys->[0] ($version) failed saying Kafka had it, "
			  . "and it is not in the log";
		}
		elsif ($in)
		{
			$stored_unknown++;
		}
	}
	diag("$scenario: of the failed writes whose outcome was unknown, "
		  . "$stored_unknown are stored in the log");
	is($missing, 0, "$scenario: every acknowledged write is in the topic's log")
	  or diag(join("\n", @examples[ 0 .. ($#examples < 9 ? $#examples : 9) ]));
	is($untrue, 0, "$scenario: every failed write whose error said it was (not) stored was (not)")
	  or diag(join("\n", @examples[ 0 .. ($#examples < 9 ? $#examples : 9) ]));
	return;
}

# All servers have applied the same offset and hold the same data
sub check_converged
{
	my ($self, $scenario, $servers) = @_;
	my $topic = $self->{topic};
	my $sql = "SELECT applied_offset, keys, checksum FROM kv_checksum('$topic')";
	my @sums;
	# kv_sync returned on each; poll until every server reports the same
	# applied offset, which nothing moves once the writers stopped
	my $same = $self->poll(
		sub {
			@sums = map { $_->safe_psql('postgres', "SELECT kv_sync('$topic'); $sql") } @$servers;
			s/^\d+\n// for @sums;
			my %offsets = map { (split /\|/)[0] => 1 } @sums;
			return keys(%offsets) == 1;
		},
		undef,
		'the servers to apply the same offset');
	my %distinct = map { $_ => 1 } @sums;
	is(scalar(keys %distinct), 1,
		"$scenario: kv_checksum is equal on all " . scalar(@$servers) . ' servers')
	  or diag(join("\n", @sums));
	my ($applied, $keys) = split /\|/, $sums[0];
	my $scanned = $servers->[0]->safe_psql('postgres', "SELECT count(*) FROM kv_scan('$topic')");
	is($keys, $scanned, "$scenario: kv_checksum counts the keys a scan returns");
	return;
}

# The failures grouped by SQLSTATE and message (topic names and numbers
# taken out), each with its count and slowest duration, as text lines
sub failure_kinds
{
	my ($self, $r) = @_;
	my %kinds;
	for my $f (@{ $r->{failures} })
	{
		(my $msg = $f->[4]) =~ s/"[^"]*"/"..."/g;
		$msg =~ s/\d+/N/g;
		$msg = substr($msg, 0, 160);
		my $kind = "$f->[5]: $f->[3] $f->[0]: $msg";
		$kinds{$kind}{count}++;
		$kinds{$kind}{ms} = $f->[1] if ($kinds{$kind}{ms} // 0) < $f->[1];
	}
	return map { sprintf('%4d x, slowest %5d ms: %s', $kinds{$_}{count}, $kinds{$_}{ms}, $_) }
	  sort { $kinds{$b}{count} <=> $kinds{$a}{count} } keys %kinds;
}

# The failures whose SQLSTATE is not in the list, as text
sub unexpected_failures
{
	my ($self, $r, @states) = @_;
	my %ok = map { $_ => 1 } @states;
	return map { "$_->[0] v$_->[2] after $_->[1] ms: $_->[3] $_->[4]" }
	  grep { !$ok{ $_->[3] } } @{ $r->{failures} };
}

1;
