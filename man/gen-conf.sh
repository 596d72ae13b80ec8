#!/bin/sh
# gen-conf.sh TEMPLATE - write batchd.conf(5) in scdoc from the option
# table on stdin (`batchd --dump-options`: section, name, type, default,
# range, help; tab-separated). TEMPLATE is the page's hand-written prose
# with a line "@DAEMON@", "@SINK@" and "@ROUTE@" where each section's
# options go. The table is the daemon's own, so page and code agree.
set -eu
template=$1
table=$(mktemp)
trap 'rm -f "$table"' EXIT
cat >"$table"
[ -s "$table" ] || { echo "gen-conf.sh: empty option table" >&2; exit 1; }

# One section's options as a scdoc list: name, type, default and range,
# then the help indented. '*' starts bold in scdoc: escape it.
options() {
    awk -F '\t' -v sec="$1" '
        $1 == sec {
            gsub(/\*/, "\\*", $4); gsub(/\*/, "\\*", $6)
            line = "*" $2 "* = _" $3 "_"
            if ($4 == "(required)") line = line ", required"
            else if ($4 == "(unset)") line = line ", not set by default"
            else line = line ", default " $4
            if ($5 != "-") line = line ", " ($3 == "enum" ? "one of " : "range ") $5
            print line
            print "\t" $6
            print ""
        }' "$table"
}

while IFS= read -r line; do
    case $line in
    @DAEMON@) options daemon ;;
    @SINK@) options sink ;;
    @ROUTE@) options route ;;
    *) printf '%s\n' "$line" ;;
    esac
done <"$template"
