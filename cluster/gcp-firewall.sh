#!/usr/bin/env bash
# Create the network cluster/gcp.yaml expects: network `rlgen` with subnetwork `rlgen` in
# REGION, a firewall rule admitting SSH from one address range, and one admitting all traffic
# between the network's own addresses (Ray's ports); nothing else. Needs gcloud, and python3
# (standard library only) for check.py's address-range rule: SSH_CIDR (one range or several,
# comma-separated) admits at most one /16 (IPv4) or /48 (IPv6) in all.
#
#   bash cluster/gcp-firewall.sh PROJECT_ID REGION SSH_CIDR
set -euo pipefail
project=${1:?usage: gcp-firewall.sh PROJECT_ID REGION SSH_CIDR}
region=${2:?usage: gcp-firewall.sh PROJECT_ID REGION SSH_CIDR}
cidr=${3:?usage: gcp-firewall.sh PROJECT_ID REGION SSH_CIDR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! why=$(python3 "$here/check.py" --cidr "$cidr" 2>&1); then
    echo "gcp-firewall.sh: refusing to admit SSH from $cidr: ${why:-python3 failed}; give your own range, e.g. 203.0.113.7/32" >&2
    exit 2
fi
range=10.40.0.0/16
gcloud compute networks create rlgen --project "$project" --subnet-mode custom
gcloud compute networks subnets create rlgen --project "$project" --network rlgen \
    --region "$region" --range "$range"
gcloud compute firewall-rules create rlgen-ssh --project "$project" --network rlgen \
    --direction INGRESS --allow tcp:22 --source-ranges "$cidr"
gcloud compute firewall-rules create rlgen-internal --project "$project" --network rlgen \
    --direction INGRESS --allow tcp,udp,icmp --source-ranges "$range"
