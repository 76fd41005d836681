"""`scrm import orders`: the sample exports import, re-imports change nothing, bad rows land in the rejects file."""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.cli import add_import_parser, run_import_orders
from models import Customer, Order, OrderStatus, Store

SAMPLES = Path(__file__).resolve().parent.parent / "customers" / "samples"
Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, maker: Maker) -> Path:
    """Copies of the samples, and the command pointed at the test database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("SCRM_TIMEZONE", raising=False)
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, tmp_path / sample.name)
    return tmp_path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scrm")
    add_import_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["import", "orders", *argv])


async def run(*argv: str) -> int:
    args = parse(*argv)
    assert args.func.__name__ == "cmd_import_orders"
    return await run_import_orders(args)


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


async def stored(maker: Maker) -> dict[str, Order]:
    async with maker() as session:
        return {o.channel_order_id: o for o in (await session.scalars(select(Order))).all()}


async def test_tmall_sample_imports_with_summary_progress_and_rejects(workdir: Path, maker: Maker, capsys: Any) -> None:
    assert await run(str(workdir / "tmall_orders.csv"), "--channel", "tmall") == 0
    out, err = capsys.readouterr()
    assert "读取行数 rows read          15" in out
    assert "新建订单 orders created     9" in out and "更新订单 orders updated     1" in out
    assert "拒绝 rejected               2" in out and "新客户 new customers        8" in out
    assert "导入 import" in err and "16/16" in err  # the progress bar, on stderr
    assert rejects(workdir / "tmall_orders.csv.rejects.csv") == [
        {"line": "12", "order_id": "", "reason": "缺少订单号 missing order id (订单编号)"},
        {"line": "13", "order_id": "4012873365120451790",
         "reason": "金额无法解析 unparseable amount 买家实际支付金额='12O.00'"},
    ]
    orders = await stored(maker)
    assert len(orders) == 9
    assert orders["4012873365120451782"].status is OrderStatus.REFUNDED  # re-sent further down the file
    assert orders["4012873365120451786"].status is OrderStatus.PARTIALLY_REFUNDED
    assert orders["4012873365120451781"].customer_id == orders["4012873365120451787"].customer_id  # same phone

    # The same file again: nothing new, nothing duplicated, the older 'paid' row does not undo the refund.
    assert await run(str(workdir / "tmall_orders.csv"), "--channel", "tmall", "--rejects", str(workdir / "r.csv")) == 0
    out = capsys.readouterr().out
    assert "新建订单 orders created     0" in out and "未变订单 orders unchanged   10" in out
    assert len(rejects(workdir / "r.csv")) == 2
    assert len(await stored(maker)) == 9
    assert (await stored(maker))["4012873365120451782"].status is OrderStatus.REFUNDED


async def test_tmall_then_pos_then_jd_share_customers_by_phone(workdir: Path, maker: Maker, capsys: Any) -> None:
    async with maker.begin() as session:
        session.add_all([Store(code="SH001", name="上海南京西路店"), Store(code="SH002", name="上海淮海中路店"),
                         Store(code="BJ001", name="北京三里屯店")])
    assert await run(str(workdir / "tmall_orders.csv"), "--channel", "tmall") == 0
    assert await run(str(workdir / "pos_orders.csv"), "--channel", "pos") == 0
    out = capsys.readouterr().out
    assert "新建订单 orders created     7" in out and "未知门店编码 unknown store code 'SH009'" in out
    assert {r["reason"].split(" ")[0] for r in rejects(workdir / "pos_orders.csv.rejects.csv")} == {
        "没有买家身份", "商品数量必须大于"}
    assert await run(str(workdir / "jd_orders.jsonl"), "--channel", "jd") == 0
    orders = await stored(maker)
    lily = {orders[o].customer_id for o in ("4012873365120451781", "SH001-20240503-0001", "289374651201")}
    assert len(lily) == 1  # Tmall, store and JD: one 林丽
    assert orders["SH002-20240509-0004"].customer_id == orders["4012873365120451784"].customer_id  # 周燕
    assert orders["SH009-20240506-0001"].store_id is None and orders["SH001-20240503-0001"].store_id is not None
    assert orders["SH001-20240503-0002"].status is OrderStatus.PARTIALLY_REFUNDED
    assert orders["SH001-20240503-0002"].refunded_cents == 27400
    # JD: the late, older 'WAIT_SELLER_STOCK_OUT' line after the refund changed nothing.
    assert orders["289374651204"].status is OrderStatus.REFUNDED
    assert [r["line"] for r in rejects(workdir / "jd_orders.jsonl.rejects.csv")] == ["7", "8"]
    async with maker() as session:
        names = (await session.scalars(select(Customer.name).where(Customer.merged_into_id.is_(None)))).all()
    assert names.count("林丽") == 1 and names.count("周燕") == 1


async def test_bom_and_gbk_csv_exports(workdir: Path, maker: Maker, capsys: Any) -> None:
    text = (workdir / "tmall_orders.csv").read_text(encoding="utf-8")
    (workdir / "bom.csv").write_text(text, encoding="utf-8-sig")
    (workdir / "gbk.csv").write_bytes(text.replace("4012873365", "5012873365").encode("gbk"))
    assert await run(str(workdir / "bom.csv"), "--channel", "tmall") == 0
    assert await run(str(workdir / "gbk.csv"), "--channel", "tmall") == 0
    orders = await stored(maker)
    assert len(orders) == 18 and orders["5012873365120451781"].paid_cents == 129800


async def test_exit_codes(workdir: Path, maker: Maker, capsys: Any) -> None:
    assert await run(str(workdir / "missing.csv"), "--channel", "tmall") == 1
    assert "cannot read" in capsys.readouterr().err
    assert await run(str(workdir / "tmall_orders.csv"), "--channel", "weibo") == 2
    assert "unknown channel 'weibo'; known: douyin, jd, miniapp, pos, tmall" in capsys.readouterr().err
    (workdir / "orders.txt").write_text("x", encoding="utf-8")
    assert await run(str(workdir / "orders.txt"), "--channel", "tmall") == 2
    assert "--format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        parse(str(workdir / "orders.txt"))  # no --channel
    assert exc.value.code == 2
    capsys.readouterr()
    (workdir / "bad.jsonl").write_text('{"orderId": "1"}\nnot json\n', encoding="utf-8")
    assert await run(str(workdir / "bad.jsonl"), "--channel", "jd") == 1  # nothing landed
    assert "no order in bad.jsonl could be imported" in capsys.readouterr().err
    assert [r["line"] for r in rejects(workdir / "bad.jsonl.rejects.csv")] == ["1", "2"]
    (workdir / "tmall.data").write_bytes((workdir / "tmall_orders.csv").read_bytes())
    assert await run(str(workdir / "tmall.data"), "--channel", "tmall", "--format", "csv") == 0
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 9
