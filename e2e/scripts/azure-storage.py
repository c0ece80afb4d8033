#!/usr/bin/env python3
"""Azure Table storage through Microsoft's own Python SDK (azure-data-tables): what the tests use to
write rows, and the plain reader a user would script instead of azlog, for the benchmark.

  azure-storage.py --endpoint URL --account NAME --key KEY put-rows TABLE [--int64 COL ...] < rows.ndjson
  azure-storage.py ... create-table TABLE
  azure-storage.py ... sas TABLE                       # prints a read-only SAS token, valid 1 hour
  azure-storage.py ... forward TABLE HOST:PORT COUNT   # reads rows, sends each as RFC 5424 over TCP
"""
import argparse
import datetime
import itertools
import json
import socket
import sys

from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableSasPermissions,
    TableServiceClient,
    generate_table_sas,
)


def service(args):
    credential = AzureNamedKeyCredential(args.account, args.key)
    return TableServiceClient(endpoint=args.endpoint, credential=credential)


def put_rows(args):
    table = service(args).create_table_if_not_exists(args.table)
    rows = (json.loads(line) for line in sys.stdin if line.strip())
    written = 0
    # One transaction holds up to 100 operations on a single partition.
    for _, group in itertools.groupby(rows, key=lambda r: r["PartitionKey"]):
        group = list(group)
        for start in range(0, len(group), 100):
            batch = []
            for row in group[start:start + 100]:
                for column in args.int64:
                    if column in row:
                        row[column] = EntityProperty(int(row[column]), EdmType.INT64)
                batch.append(("upsert", row))
            table.submit_transaction(batch)
            written += len(batch)
    print(written)


def create_table(args):
    service(args).create_table_if_not_exists(args.table)


def sas(args):
    token = generate_table_sas(
        AzureNamedKeyCredential(args.account, args.key),
        args.table,
        permission=TableSasPermissions(read=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    print(token)


def forward(args):
    """What a user would write: list every row, send each as an RFC 5424 message with a JSON body."""
    host, port = args.address.rsplit(":", 1)
    sink = socket.create_connection((host, int(port)))
    table = service(args).get_table_client(args.table)
    sent = 0
    for entity in table.list_entities(results_per_page=1000):
        row = {k: (v.value if isinstance(v, EntityProperty) else v) for k, v in entity.items()}
        for k, v in row.items():
            if isinstance(v, datetime.datetime):
                row[k] = v.isoformat()
        body = json.dumps(row, separators=(",", ":"), default=str)
        when = entity.metadata["timestamp"].isoformat()
        line = f"<134>1 {when} {row.get('RoleInstance', '-')} wadreader - WindowsEvent - {body}"
        data = line.encode()
        sink.sendall(f"{len(data)} ".encode() + data)
        sent += 1
        if sent >= args.count:
            break
    sink.close()
    print(sent)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--key", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("put-rows")
    p.add_argument("table")
    p.add_argument("--int64", nargs="*", default=[])
    p.set_defaults(run=put_rows)
    p = commands.add_parser("create-table")
    p.add_argument("table")
    p.set_defaults(run=create_table)
    p = commands.add_parser("sas")
    p.add_argument("table")
    p.set_defaults(run=sas)
    p = commands.add_parser("forward")
    p.add_argument("table")
    p.add_argument("address")
    p.add_argument("count", type=int)
    p.set_defaults(run=forward)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
