#!/usr/bin/env bash
# Create the security group cluster/aws.yaml expects: SSH from one address range, all traffic
# between the group's own members (Ray's ports), nothing else. Prints the group id to put in
# every SecurityGroupIds of aws.yaml. Needs the AWS CLI with credentials.
#
#   bash cluster/aws-security-group.sh VPC_ID SSH_CIDR [REGION]
set -euo pipefail
vpc=${1:?usage: aws-security-group.sh VPC_ID SSH_CIDR [REGION]}
cidr=${2:?usage: aws-security-group.sh VPC_ID SSH_CIDR [REGION]}
region=${3:-${AWS_DEFAULT_REGION:-us-west-2}}
case "$cidr" in
    0.0.0.0/0 | ::/0) echo "aws-security-group.sh: refusing to open SSH to the whole internet; give your own range, e.g. 203.0.113.7/32" >&2; exit 2 ;;
esac
sg=$(aws ec2 create-security-group --region "$region" --vpc-id "$vpc" \
    --group-name rlgen-cluster --description "rlgen Ray cluster: SSH from $cidr, Ray inside the group" \
    --query GroupId --output text)
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
    --protocol tcp --port 22 --cidr "$cidr" > /dev/null
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
    --protocol -1 --source-group "$sg" > /dev/null
echo "$sg"
