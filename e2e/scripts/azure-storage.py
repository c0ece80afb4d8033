#!/usr/bin/env python3
"""Azure Storage through Microsoft's own Python SDKs (azure-data-tables, azure-storage-blob): what the
tests use to write rows and blobs, and the plain reader a user would script instead of azlog, for the
benchmark.

  azure-storage.py --endpoint URL --account NAME --key KEY put-rows TABLE [--int64 COL ...] < rows.ndjson
  azure-storage.py ... put-sample-rows TABLE COUNT    # WAD-shaped rows, 1000 per minute partition
  azure-storage.py ... ceiling TABLE                   # rows/s Azurite serves to a client that only counts
  azure-storage.py ... create-table TABLE
  azure-storage.py ... sas TABLE                       # prints a read-only SAS token, valid 1 hour
  azure-storage.py ... forward TABLE HOST:PORT COUNT   # reads rows, sends each as RFC 5424 over TCP
  azure-storage.py --blob-endpoint URL ... append CONTAINER BLOB < bytes      # to an append blob
  azure-storage.py --blob-endpoint URL ... put-blob CONTAINER BLOB < bytes    # a whole block blob
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


def verify(args):
    """The CA bundle to trust (Azurite over HTTPS), or the default."""
    return {"connection_verify": args.ca_file} if args.ca_file else {}


def service(args):
    credential = AzureNamedKeyCredential(args.account, args.key)
    return TableServiceClient(endpoint=args.endpoint, credential=credential, **verify(args))


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


def sample_rows(count):
    """Rows shaped as the Windows diagnostics agent writes them, 1000 per minute partition."""
    epoch = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=4)
    for n in range(count):
        minute = (start + datetime.timedelta(minutes=n // 1000)).replace(second=0, microsecond=0)
        t = minute + datetime.timedelta(milliseconds=n % 1000 * 50)
        ticks = int((t - epoch).total_seconds()) * 10**7 + t.microsecond * 10
        minute_ticks = int((minute - epoch).total_seconds()) * 10**7
        yield {
            "PartitionKey": "0%d" % minute_ticks,
            "RowKey": "a1b2c3d4e5f64a5b8c9d0e1f2a3b4c5d___WebRole___WebRole_IN_0___%019d___%08d" % (ticks, n),
            "EventTickCount": EntityProperty(ticks, EdmType.INT64),
            "DeploymentId": "a1b2c3d4e5f64a5b8c9d0e1f2a3b4c5d", "Role": "WebRole", "RoleInstance": "WebRole_IN_0",
            "Level": 4, "EventId": 4625, "Pid": 636, "Tid": 1512,
            "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
            "ProviderName": "Microsoft-Windows-Security-Auditing", "Channel": "Security",
            "Description": "An account failed to log on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-0-0\r\n\tAccount Name:\t\t-\r\n\r\nLogon Type:\t\t\t3\r\n\r\nAccount For Which Logon Failed:\r\n\tAccount Name:\t\tadministrator\r\n\r\nFailure Information:\r\n\tFailure Reason:\t\tUnknown user name or bad password.",
            "RawXml": "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{54849625-5478-4994-A5BA-3E3B0328C30D}'/><EventID>4625</EventID><Level>0</Level><Task>12544</Task><Keywords>0x8010000000000000</Keywords><EventRecordID>%d</EventRecordID><Channel>Security</Channel><Computer>web-01</Computer></System></Event>" % n,
            "PreciseTimeStamp": t,
        }


def put_sample_rows(args):
    table = service(args).create_table_if_not_exists(args.table)
    written = 0
    for _, group in itertools.groupby(sample_rows(args.count), key=lambda r: r["PartitionKey"]):
        group = list(group)
        for start in range(0, len(group), 100):
            table.submit_transaction([("upsert", row) for row in group[start:start + 100]])
            written += len(group[start:start + 100])
    print(written)


def ceiling(args):
    """Azurite's ceiling: pages fetched with a SAS over plain HTTP and only counted, no parsing."""
    import http.client
    import time
    import urllib.parse

    endpoint = urllib.parse.urlsplit(args.endpoint)
    token = generate_table_sas(
        AzureNamedKeyCredential(args.account, args.key),
        args.table,
        permission=TableSasPermissions(read=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port)
    headers = {"Accept": "application/json;odata=minimalmetadata", "x-ms-version": "2019-02-02"}
    rows, continuation, started = 0, None, time.monotonic()
    while True:
        query = f"$top=1000&{token}"
        if args.filter:
            query += "&$filter=" + urllib.parse.quote(args.filter)
        if continuation:
            query += "&" + urllib.parse.urlencode(continuation)
        connection.request("GET", f"{endpoint.path}/{args.table}()?{query}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit(f"HTTP {response.status}: {body[:300]!r}")
        rows += body.count(b'"PartitionKey"')
        partition = response.getheader("x-ms-continuation-NextPartitionKey")
        if not partition:
            break
        continuation = {"NextPartitionKey": partition}
        row = response.getheader("x-ms-continuation-NextRowKey")
        if row:
            continuation["NextRowKey"] = row
    print(rows, time.monotonic() - started)


def blob_service(args):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(
        args.blob_endpoint, credential={"account_name": args.account, "account_key": args.key}, **verify(args)
    )


def container(args):
    from azure.core.exceptions import ResourceExistsError

    client = blob_service(args).get_container_client(args.container)
    try:
        client.create_container()
    except ResourceExistsError:
        pass
    return client


def append(args):
    """Appends stdin to an append blob, as Azure Monitor does to an hour's PT1H.json."""
    blob = container(args).get_blob_client(args.blob)
    if not blob.exists():
        blob.create_append_blob()
    data = sys.stdin.buffer.read()
    if data:
        blob.append_block(data)


def append_many(args):
    """Appends to many append blobs: stdin holds JSON lines {"container", "blob", "data"}."""
    from azure.core.exceptions import ResourceExistsError

    service = blob_service(args)
    containers = set()
    for line in sys.stdin:
        if not line.strip():
            continue
        item = json.loads(line)
        client = service.get_container_client(item["container"])
        if item["container"] not in containers:
            try:
                client.create_container()
            except ResourceExistsError:
                pass
            containers.add(item["container"])
        blob = client.get_blob_client(item["blob"])
        if not blob.exists():
            blob.create_append_blob()
        blob.append_block(item["data"].encode())


def put_blob(args):
    container(args).get_blob_client(args.blob).upload_blob(sys.stdin.buffer.read(), overwrite=True)


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
    parser.add_argument("--endpoint", default="", help="the table endpoint")
    parser.add_argument("--blob-endpoint", default="")
    parser.add_argument("--ca-file", default="", help="CA bundle to trust for HTTPS endpoints")
    parser.add_argument("--account", required=True)
    parser.add_argument("--key", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("put-rows")
    p.add_argument("table")
    p.add_argument("--int64", nargs="*", default=[])
    p.set_defaults(run=put_rows)
    p = commands.add_parser("put-sample-rows")
    p.add_argument("table")
    p.add_argument("count", type=int)
    p.set_defaults(run=put_sample_rows)
    p = commands.add_parser("ceiling")
    p.add_argument("table")
    p.add_argument("--filter", default="")
    p.set_defaults(run=ceiling)
    for name, run in [("append", append), ("put-blob", put_blob)]:
        p = commands.add_parser(name)
        p.add_argument("container")
        p.add_argument("blob")
        p.set_defaults(run=run)
    p = commands.add_parser("append-many")
    p.set_defaults(run=append_many)
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
