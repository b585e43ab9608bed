# Shared by the benchmark scripts (sourced, not run): the testbed they run on and its
# teardown, and byte counts with K/M/G suffixes.

# testbed_up SKIFF PREFIX [QUEUES]: a veth testbed named PREFIX + this shell's PID (veth
# names are at most 15 bytes, the "-a"/"-b" suffixes included), a scratch folder; both are
# removed on exit, also on failure. Sets $name and $tmp.
testbed_up() {
    local skiff=$1 prefix=$2 queues=${3:-1}
    name="$prefix$$"; name=${name:0:11}
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expanded now on purpose: the values of this call
    trap "'$skiff' testbed down --name '$name' >/dev/null 2>&1 || true; rm -rf '$tmp'" EXIT
    "$skiff" testbed up --name "$name" --queues "$queues" >/dev/null
}

# parse_bytes N[K|M|G]: the count in bytes (binary suffixes).
parse_bytes() {
    python3 -c "
import re, sys
m = re.fullmatch(r'(\d+)([KMG]?)', sys.argv[1])
if not m:
    sys.exit(f'bad byte count {sys.argv[1]!r}: N, NK, NM or NG')
print(int(m[1]) << {'': 0, 'K': 10, 'M': 20, 'G': 30}[m[2]])" "$1"
}
