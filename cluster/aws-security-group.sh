#!/usr/bin/env bash
# Create the security group cluster/aws.yaml expects: SSH from one address range, all traffic
# between the group's own members (Ray's ports), nothing else. Prints the group id to put in
# every SecurityGroupIds of aws.yaml. Needs the AWS CLI with credentials, and python3 (standard
# library only) for check.py's address-range rule: at most one /16 (IPv4) or /48 (IPv6).
#
#   bash cluster/aws-security-group.sh VPC_ID SSH_CIDR [REGION]
set -euo pipefail
vpc=${1:?usage: aws-security-group.sh VPC_ID SSH_CIDR [REGION]}
cidr=${2:?usage: aws-security-group.sh VPC_ID SSH_CIDR [REGION]}
region=${3:-${AWS_DEFAULT_REGION:-us-west-2}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! why=$(python3 "$here/check.py" --cidr "$cidr" 2>&1); then
    echo "aws-security-group.sh: refusing to admit SSH from $cidr: ${why:-python3 failed}; give your own range, e.g. 203.0.113.7/32" >&2
    exit 2
fi
sg=$(aws ec2 create-security-group --region "$region" --vpc-id "$vpc" \
    --group-name rlgen-cluster --description "rlgen Ray cluster: SSH from $cidr, Ray inside the group" \
    --query GroupId --output text)
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
    --protocol tcp --port 22 --cidr "$cidr" > /dev/null
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
    --protocol -1 --source-group "$sg" > /dev/null
echo "$sg"
