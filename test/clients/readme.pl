#!/usr/bin/perl
#
# readme.pl: the README's examples under "From your application" are
# excerpts of the client programs: every line of code in each example is a
# line of the program it names (comments aside), so that what the README
# shows is what the suite runs.  Prints TAP.
#
use strict;
use warnings;
use FindBin;

my $root = "$FindBin::Bin/../..";
my %program = (
	python => 'python/client.py',
	js => 'node/client.js',
	go => 'go/main.go',
	java => 'java/Client.java');

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "cannot read $path: $!";
	local $/;
	return <$fh>;
}

my ($section) = slurp("$root/README.md") =~ /^## From your application\n(.*?)^## /ms
  or die "README.md has no section \"From your application\"";
my %examples;
while ($section =~ /^```(\w+)\n(.*?)^```/msg)
{
	$examples{$1} = $2;
}

my $n = 0;
my $failed = 0;
for my $lang (sort keys %program)
{
	$n++;
	my %lines = map { s/^\s+|\s+$//gr => 1 }
	  split /\n/, slurp("$FindBin::Bin/$program{$lang}");
	my @missing;
	if (!defined $examples{$lang})
	{
		@missing = ('(no example)');
	}
	else
	{
		for my $line (split /\n/, $examples{$lang})
		{
			$line =~ s/^\s+|\s+$//g;
			next if $line eq '' || $line =~ m{^(#|//)};
			push @missing, $line unless $lines{$line};
		}
	}
	my $name = "the $lang example is an excerpt of $program{$lang}";
	if (@missing)
	{
		$failed++;
		print "not ok $n - $name\n";
		print "# not in the program: $_\n" for @missing;
	}
	else
	{
		print "ok $n - $name\n";
	}
}
print "1..$n\n";
exit($failed ? 1 : 0);
