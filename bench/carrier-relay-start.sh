#!/bin/bash
# Started by ../shared/bench/peer-bench.sh --start (TARGET_PORT and SINK_PORT exported): runs
# carrier as a relay that accepts on TARGET_PORT and forwards everything to the sink through a
# smarthost route, with its spool on the bench disk. SYNC_MODE: file (default) or filesystem.
set -euo pipefail
root=/var/tmp/mta-bench/carrier-relay
rm -rf "$root"; mkdir -p "$root"
cat > "$root/carrier.toml" <<EOT
[server]
hostname = "carrier.bench.invalid"
run_as_root = true
data_dir = "$root/var"
sync_mode = "${SYNC_MODE:-file}"
delivery_threads = 32
log_level = "warn"
[[listener]]
address = "127.0.0.1:${TARGET_PORT}"
[local]
domains = ["carrier.bench.invalid"]
mailboxes = ["postmaster"]
[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:${SINK_PORT}"
max_per_destination = 32
EOT
exec "${CARRIER_BIN:-build/carrier}" serve --config "$root/carrier.toml"
