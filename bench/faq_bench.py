"""Benchmark of the FAQ matcher: 2,000 entries in one chat, realistic Chinese chat messages.

    .venv/bin/python bench/faq_bench.py [--messages 20000] [--entries 2000] [--out bench/FAQ_RESULTS.md]

Measures, per message, the work the ``FaqMatch`` filter does on every group message:
normalize (NFKC, traditional -> simplified, case) -> match form -> Aho-Corasick pass -> (word-mode
hits verified with jieba, regex fallback when no keyword hit) -> for non-matching messages the
question check that feeds /faqgaps. Reported: median / p90 / p99 microseconds for matching and
non-matching messages, plus the same through the real ``FaqMatch`` filter object, the automaton
build time, and a naive substring scan for comparison. Results go to bench/FAQ_RESULTS.md.

Not a timed unit test: the machine is shared and noisy, so numbers are medians of many runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram.types import Message  # noqa: E402

from bot.nlp import NlpService  # noqa: E402
from plugins.faq.config import FaqConfig  # noqa: E402
from plugins.faq.handlers import FaqMatch  # noqa: E402
from plugins.faq.matcher import CONTAINS, EXACT, REGEX, WORD, ChatMatcher, EntryData, match_form  # noqa: E402
from plugins.faq.parsing import prepare_entry  # noqa: E402
from plugins.faq.runtime import FaqRuntime  # noqa: E402


def words(text: str) -> list[str]:
    return text.split()


PRODUCTS = words(
    "羽绒服 连衣裙 面膜 精华液 口红 洗面奶 防晒霜 运动鞋 牛仔裤 卫衣 保温杯 蓝牙耳机 充电宝 猫粮 狗粮 奶粉 纸尿裤 "
    "茶叶 坚果 月饼 大闸蟹 车厘子 榴莲 咖啡豆 洗衣液 护手霜 香水 围巾 羊毛衫 手链 粉底液 眼霜 卸妆水 沐浴露 "
    "洗发水 电动牙刷 吹风机 行李箱 双肩包 保暖内衣 睡衣 袜子 拖鞋 枕头 四件套 蜂蜜 燕窝 阿胶 红枣 枸杞 "
    "牙膏 漱口水 身体乳 发膜 睫毛膏 眉笔 腮红 遮瑕 散粉 指甲油 卷发棒 按摩仪 空气炸锅 电饭煲 榨汁机 "
    "咖啡机 加湿器 台灯 瑜伽垫 跳绳"
)
ASPECTS = words(
    "尺码 保质期 用法 成分 产地 色号 价格 优惠 发货时间 包邮 退换 过敏 保修 质量 规格 赠品 库存 预售 正品 味道 "
    "容量 材质 清洗方法 颜色 重量 快递 有货 批次 适合人群 孕妇能用"
)
SYNONYM_OF = {"尺码": "码数", "价格": "多少钱", "发货时间": "什么时候发", "保质期": "过期时间", "用法": "怎么用",
              "退换": "退货", "快递": "什么快递", "有货": "还有吗"}
GENERAL = [
    (["发货多久", "几天到", "什么时候发货"], CONTAINS, "48小时内发货，偏远地区3-5天。"),
    (["怎么退货", "如何退货", "退货流程"], CONTAINS, "七天无理由：订单页申请退货，寄回后1-3天退款。"),
    (["优惠券怎么用", "优惠券在哪"], CONTAINS, "下单时在结算页选择优惠券即可。"),
    (["客服"], EXACT, "人工客服请私聊 @shop_help（9:00-21:00）。"),
    (["开发票", "发票"], WORD, "可以开电子发票，下单备注抬头和税号。"),
    (["包邮吗"], CONTAINS, "全场满59包邮。"),
    (["直播"], WORD, "每周二、四、六晚八点直播。"),
    (["会员"], WORD, "会员积分可抵现，详见群公告。"),
    (["改地址", "修改地址"], CONTAINS, "未发货前可在订单页修改地址。"),
    (["顺丰"], WORD, "默认中通，补差价可发顺丰。"),
]
REGEXES = [
    r"^(怎么|如何)(联系|找)(客服|人工)", r"订单号\s*\d{6,}", r"\d{11}", r"(退|换)货.*(运费|邮费)", r"(假货|假的)吗",
    r"^在吗[?]?$", r"(哪里|哪儿)(买|下单)", r"(开|有)(团|拼团).*(吗|呢)", r"(几|多少)号(发|到)", r"能(便宜|少)点",
    r"(价格|价钱).*(贵|高)", r"质量.*(问题|不好)", r"(优惠|折扣)码", r"(积分|签到).*(兑换|换)",
    r"(抽奖|中奖).*(吗|呢|了)",
    r"团长.*(在|回)", r"(漏发|少发|发错)", r"(快递|物流).*(不动|没动|没更新)", r"(破损|坏了|碎了)", r"(过期|临期)",
]
CHAT = [
    "哈哈哈哈哈", "早上好各位姐妹", "今天天气不错😀", "谢谢群主", "收到", "已下单", "好的好的", "[图片]", "这个好看",
    "冲冲冲", "姐妹们晚上好", "蹲一个", "+1", "昨天买的已经到了，很喜欢", "求链接", "太划算了吧", "我也想要",
    "晚安", "打卡", "今天好忙啊", "刚下班，累死了", "有人一起拼单吗", "颜色好正", "好评好评👍", "等了好久终于到了",
    "已经回购第三次了", "孩子很喜欢", "送朋友的，她说不错", "Thanks!", "OK", "666", "路过", "羡慕了",
    "今天的福利是什么", "这周末有活动吗", "上次那个链接还能用吗", "群里好热闹", "新人报到", "大家都买了什么",
    "老板大气", "明天再来", "周末愉快", "下雨了记得带伞", "我家猫超爱吃", "包装很精致", "物流挺快的",
]
TEMPLATES_HIT = ["请问{p}{a}是多少呀？", "{p}的{a}怎么样", "想问下{p}{a}", "{p}{a}有人知道吗", "姐妹们{p}{a}如何",
                 "{p}{a}??", "我想了解一下{p}{a}，谢谢", "{p}{a}"]
TEMPLATES_MISS = ["{p}真好看", "刚买了{p}", "{p}到了，开心", "今天用了{p}", "给妈妈买了{p}", "{p}已经用完了",
                  "推荐一下{p}", "{p}回购了"]
QUESTIONS_MISS = ["什么时候开直播呢", "群主在吗", "明天有活动吗", "这个适合送人吗", "为什么我的积分没到账",
                  "怎么加入会员群", "可以寄到香港吗", "能不能开个团", "多久上新呢"]


@dataclass
class Sample:
    text: str
    expect_hit: bool


def build_entries(n: int, rng: random.Random, normalize: Callable[[str], str]) -> list[EntryData]:
    raw: list[tuple[list[str], str, str]] = list(GENERAL) + [([r], REGEX, "见群公告") for r in REGEXES]
    combos = [(p, a) for p in PRODUCTS for a in ASPECTS]
    rng.shuffle(combos)
    for p, a in combos[: max(0, n - len(raw))]:
        keywords = [p + a]
        if a in SYNONYM_OF:
            keywords.append(p + SYNONYM_OF[a])
        if rng.random() < 0.3:
            keywords.append(f"{p}的{a}")
        mode = WORD if rng.random() < 0.08 else (EXACT if rng.random() < 0.03 else CONTAINS)
        raw.append((keywords, mode, f"{p}{a}：请看商品详情页第三张图。"))
    entries = []
    for i, (keywords, mode, reply) in enumerate(raw[:n], 1):
        e = prepare_entry(keywords, mode, reply, normalize)
        entries.append(EntryData(i, e.mode, tuple(e.keywords), tuple(e.norms), e.reply_html))
    return entries


def build_messages(count: int, rng: random.Random, to_traditional: Callable[[str], str]) -> list[str]:
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.45:
            text = rng.choice(CHAT)
        elif r < 0.60:
            text = rng.choice(TEMPLATES_MISS).format(p=rng.choice(PRODUCTS))
        elif r < 0.68:
            text = rng.choice(QUESTIONS_MISS)
        elif r < 0.92:
            text = rng.choice(TEMPLATES_HIT).format(p=rng.choice(PRODUCTS), a=rng.choice(ASPECTS))
        else:
            keywords, _, _ = rng.choice(GENERAL)
            lead, tail = rng.choice(["请问", "", "想问下", "姐妹们"]), rng.choice(["？", "呀", "", "啊～"])
            text = lead + rng.choice(keywords) + tail
        if rng.random() < 0.08:
            text = to_traditional(text)
        if rng.random() < 0.05:
            text = text.replace("?", "？").replace("1", "１")
        out.append(text)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.1f} / {pct(values, 0.90):.1f} / {pct(values, 0.99):.1f}"


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    import ahocorasick
    import aiogram

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (shared with other work; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f})",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
        f"{platform.release()}",
        f"- pyahocorasick {version('pyahocorasick')} (unicode={ahocorasick.unicode}), jieba {version('jieba')}, "
        f"aiogram {aiogram.__version__}",
    ]


def bench_core(matcher: ChatMatcher, nlp: NlpService, messages: list[str], rounds: int
               ) -> tuple[list[float], list[float], int, int]:
    normalize = nlp.normalizer.normalize
    tokenize = nlp.tokenize
    word_calls = 0

    def bounds(form: str) -> set[int]:
        nonlocal word_calls
        word_calls += 1
        from plugins.faq.matcher import token_bounds

        return token_bounds(form, tokenize(form))

    hit_times: list[float] = []
    miss_times: list[float] = []
    is_question = nlp.is_question
    clock = time.perf_counter_ns
    hits = 0
    for _ in range(rounds):
        for text in messages:
            t0 = clock()
            normalized = normalize(text)
            form = match_form(normalized)
            hit = matcher.match(form, normalized, bounds)
            if hit is None:
                is_question(text)
            elapsed = (clock() - t0) / 1000
            if hit is None:
                miss_times.append(elapsed)
            else:
                hits += 1
                hit_times.append(elapsed)
    return hit_times, miss_times, hits, word_calls


def bench_naive(entries: list[EntryData], nlp: NlpService, messages: list[str]) -> list[float]:
    keywords = [n for e in entries if e.mode != REGEX for n in e.norms]
    normalize = nlp.normalizer.normalize
    times = []
    for text in messages:
        t0 = time.perf_counter_ns()
        form = match_form(normalize(text))
        _ = [k for k in keywords if k in form]
        times.append((time.perf_counter_ns() - t0) / 1000)
    return times


async def bench_filter(matcher: ChatMatcher, nlp: NlpService, messages: list[str]) -> tuple[list[float], list[float]]:
    """The real FaqMatch filter object with a cached matcher (cooldown 0, gaps on)."""

    async def emit(event: Any) -> None:
        return None

    app = SimpleNamespace(
        nlp=nlp, clock=SimpleNamespace(now=lambda: datetime.now(UTC), time=time.time),
        events=SimpleNamespace(emit=emit), db=None,
    )
    rt = FaqRuntime(app)  # type: ignore[arg-type]
    rt._matchers[-1001] = matcher
    ctx = SimpleNamespace(cfg=FaqConfig(cooldown=0), runtime=rt, app=app)
    filt = FaqMatch()
    objs = [
        Message.model_validate({
            "message_id": i, "date": 1_795_000_000, "text": text,
            "chat": {"id": -1001, "type": "supergroup", "title": "粉丝福利群"},
            "from": {"id": 1001, "is_bot": False, "first_name": "Alice"},
        })
        for i, text in enumerate(messages, 1)
    ]
    hit_times: list[float] = []
    miss_times: list[float] = []
    for msg in objs:
        t0 = time.perf_counter_ns()
        result = await filt(msg, ctx)  # type: ignore[arg-type]
        elapsed = (time.perf_counter_ns() - t0) / 1000
        (hit_times if result else miss_times).append(elapsed)
    rt.gaps.clear()
    return hit_times, miss_times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "FAQ_RESULTS.md"))
    args = parser.parse_args()

    from opencc import OpenCC

    s2t = OpenCC("s2t").convert
    rng = random.Random(args.seed)
    nlp = NlpService()
    t0 = time.perf_counter()
    _ = nlp.tokenizer
    jieba_s = time.perf_counter() - t0
    entries = build_entries(args.entries, rng, nlp.normalizer.normalize)
    keyword_count = sum(len(e.norms) for e in entries)
    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        matcher = ChatMatcher.build(entries)
        builds.append((time.perf_counter() - t0) * 1000)
    messages = build_messages(args.messages, rng, s2t)

    bench_core(matcher, nlp, messages[:2000], 1)  # warm-up (jieba caches, branch predictors)
    gc.collect()
    gc.disable()
    try:
        hit_t, miss_t, hits, word_calls = bench_core(matcher, nlp, messages, args.rounds)
        naive_t = bench_naive(entries, nlp, messages[:5000])
        f_hit, f_miss = asyncio.run(bench_filter(matcher, nlp, messages))
    finally:
        gc.enable()
    all_t = hit_t + miss_t
    total = len(all_t)
    lines = [
        "# FAQ matcher benchmark",
        "",
        f"Generated by `bench/faq_bench.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"(`--entries {args.entries} --messages {args.messages} --rounds {args.rounds} --seed {args.seed}`).",
        "",
        "## Machine",
        *machine(),
        "",
        "## Workload",
        f"- {len(entries)} entries in one chat, {keyword_count} keywords (synonyms included): "
        f"{sum(e.mode == CONTAINS for e in entries)} contains, {sum(e.mode == WORD for e in entries)} word, "
        f"{sum(e.mode == EXACT for e in entries)} exact, {sum(e.mode == REGEX for e in entries)} regex.",
        f"- {len(messages)} generated chat messages (chit-chat, product questions, service questions; ~8% "
        "traditional script, some full-width), each run "
        f"{args.rounds}×: {total} timed messages, {hits} answered ({hits / total:.0%}).",
        f"- Word-mode verification with jieba ran for {word_calls / max(total, 1):.1%} of messages "
        "(only when a word-mode keyword hit and could win).",
        "",
        "## Results (µs per message: median / p90 / p99)",
        "",
        "| what | median / p90 / p99 µs |",
        "| --- | --- |",
        f"| matcher, all messages | {summary(all_t)} |",
        f"| matcher, matching messages | {summary(hit_t)} |",
        f"| matcher, non-matching messages (incl. the /faqgaps question check) | {summary(miss_t)} |",
        f"| `FaqMatch` filter call, matching | {summary(f_hit)} |",
        f"| `FaqMatch` filter call, non-matching | {summary(f_miss)} |",
        f"| naive scan (`k in text` over {keyword_count} keywords), for comparison | {summary(naive_t)} |",
        "",
        f"- Building the automaton for {len(entries)} entries: median {statistics.median(builds):.1f} ms "
        "(done once per chat, again only after /filter, /stop, /stopall or an import).",
        f"- jieba tokenizer start-up (once per process, in a worker thread): {jieba_s:.2f} s.",
        "",
        "Target: ≤ 50 µs per message at the median with 2,000 entries. The filter rows add the aiogram",
        "Message attribute reads, the cached matcher lookup and the cooldown check to the matcher rows.",
        "The p99 is dominated by the few messages that need jieba (word mode) and by machine noise.",
        "",
    ]
    report = "\n".join(lines)
    Path(args.out).write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
