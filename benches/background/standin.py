"""The provider and the webhook receiver of benches/background/run.sh, in one small asyncio HTTP/1.1 server
(keep-alive, no framework: it should cost the shared cores as little as possible).

  GET  /api/v1/validate  Datadog's check (TOKENKEEPER_DATADOG_API_URL): after DELAY_MS, 200 {"valid": true}
  POST /hook             the webhook receiver (TOKENKEEPER_WEBHOOK_URL): 200, counted by the event's type
  GET  /count            {"checks": n, "events": n, "by_type": {...}} so far

Usage: python3 standin.py PORT DELAY_MS
"""
import asyncio
import json
import sys

COUNTS = {"checks": 0, "events": 0, "by_type": {}}


def answer(status, body):
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def handle(reader, writer, delay):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if path.startswith("/api/v1/validate"):
                if delay:
                    await asyncio.sleep(delay)
                COUNTS["checks"] += 1
                out = answer("200 OK", b'{"valid":true}')
            elif method == "POST" and path.startswith("/hook"):
                COUNTS["events"] += 1
                try:
                    kind = json.loads(body).get("type", "?")
                except ValueError:
                    kind = "?"
                COUNTS["by_type"][kind] = COUNTS["by_type"].get(kind, 0) + 1
                out = answer("200 OK", b"{}")
            elif path.startswith("/count"):
                out = answer("200 OK", json.dumps(COUNTS).encode())
            else:
                out = answer("404 Not Found", b"{}")
            writer.write(out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port, delay):
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay), "127.0.0.1", port, backlog=256)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) / 1000))
