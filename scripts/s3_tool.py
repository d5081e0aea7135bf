#!/usr/bin/env python3
"""A tiny S3 client for billrun's integration tests (boto3, which moto brings).

    s3_tool.py <endpoint> mb <bucket>
    s3_tool.py <endpoint> put <bucket> <key> <file>
    s3_tool.py <endpoint> ls <bucket> [prefix]      # one key per line, sorted
    s3_tool.py <endpoint> get <bucket> <key>        # the object's bytes on stdout
"""
import sys

import boto3


def main():
    endpoint, command, *args = sys.argv[1:]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    if command == "mb":
        s3.create_bucket(Bucket=args[0])
    elif command == "put":
        bucket, key, path = args
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    elif command == "ls":
        bucket, prefix = args[0], (args[1] if len(args) > 1 else "")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        print("\n".join(sorted(keys)))
    elif command == "get":
        bucket, key = args
        sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
