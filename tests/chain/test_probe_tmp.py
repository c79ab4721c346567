from tests.conftest import Cast
from tests.chain.ledger_support import pin_next_block_timestamp, commission, lot_id

def test_probe(cast: Cast) -> None:
    w3 = cast.w3
    def show(tag: str) -> None:
        b = w3.eth.get_block("latest"); p = w3.eth.get_block("pending")
        print(tag, b["number"], b["timestamp"], p["number"], p["timestamp"])
    show("start")
    t = pin_next_block_timestamp(w3)
    print("target", t)
    show("pinned")
    r = cast.ok(commission(cast, lot_id("x")))
    print(r.block_number, w3.eth.get_block(r.block_number)["timestamp"])
