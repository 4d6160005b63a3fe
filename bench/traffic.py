"""Seeded, reproducible Chinese group traffic as raw Telegram updates.

A mix like a busy shop fan group: chatter of many lengths, FAQ questions, 签到, replies, stickers and
photos, commands, joins, a negative burst (a product complaint pile-on) and a spam wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

CHATTER = [
    "哈哈哈", "早上好呀", "今天天气不错", "晚安各位", "有人在吗", "这个颜色好好看", "我也想要！", "+1",
    "刚下单了", "坐等发货", "收到了，包装很用心", "质量不错，会回购的", "群主辛苦了", "有没有拼团的",
    "今天直播几点开始？", "主播今天好美", "昨天的链接还有吗", "我家孩子很喜欢", "姐妹们冲鸭", "种草了",
    "求链接", "已经用了一个月了，效果还可以，就是味道有点重，不过能接受", "快递有点慢哈", "今天好累",
    "周末有活动吗", "这个和上次那个有什么区别", "谢谢客服小姐姐", "👍👍👍", "好评！", "来了来了",
    "大家双十一都买了啥", "我抢到了秒杀", "这个价格太香了", "等下次活动再入", "小红书上看到的",
    "说实话这次的包装比上次好多了，赠品也很实用，给店家点赞，希望以后多搞这种活动，我会一直支持的",
]
FAQ_QUESTIONS = [
    "发货多久？", "几天到啊", "怎么退货", "优惠券怎么用", "什么时候发货", "可以开发票吗", "有没有运费险",
    "包邮吗", "怎么联系客服", "尺码怎么选", "能不能改地址", "退款多久到账",
]
NEGATIVE = [
    "用了之后孩子脸上过敏起红疹了，已经送医了", "你们这是假货吧，我要投诉", "退款！马上退款！",
    "骗子店铺，我要去12315举报", "曝光你们，大家别买了", "质量太差了，要求退货退款", "再不处理我就找律师起诉",
    "我也过敏了，烂脸了", "客服不回消息，跑路了吗", "一起维权吧",
]
SPAM = "加微信 vx123456 免费领取福利 https://spam.example.com/abc 限时优惠"


@dataclass
class Traffic:
    updates: list[dict[str, Any]]
    chats: list[int]
    users: list[int]
    kinds: dict[str, int] = field(default_factory=dict)


def generate(n: int = 20_000, *, seed: int = 42, chats: int = 5, users: int = 300, start_ts: int = 1_795_000_000,
             first_update_id: int = 1) -> Traffic:
    rng = random.Random(seed)
    chat_ids = [-1001000000000 - i for i in range(chats)]
    user_ids = [100_000 + i for i in range(users)]
    next_msg = dict.fromkeys(chat_ids, 1)
    recent: dict[int, list[int]] = {c: [] for c in chat_ids}
    out: list[dict[str, Any]] = []
    kinds: dict[str, int] = {}
    uid = first_update_id
    ts = start_ts
    burst_at = int(n * 0.55)
    spam_at = int(n * 0.8)

    def user(u: int) -> dict[str, Any]:
        return {"id": u, "is_bot": False, "first_name": f"粉丝{u % 1000}", "username": f"fan{u}"}

    def chat(c: int) -> dict[str, Any]:
        return {"id": c, "type": "supergroup", "title": f"品牌粉丝群{-c % 100}"}

    def message(c: int, u: int, **content: Any) -> dict[str, Any]:
        mid = next_msg[c]
        next_msg[c] += 1
        recent[c].append(mid)
        if len(recent[c]) > 50:
            recent[c].pop(0)
        msg = {"message_id": mid, "date": ts, "chat": chat(c), "from": user(u), **content}
        return msg

    while len(out) < n:
        i = len(out)
        ts += rng.choice((0, 0, 1))
        c = rng.choice(chat_ids)
        u = rng.choice(user_ids)
        if burst_at <= i < burst_at + 60:
            kind = "negative_burst"
            c = chat_ids[0]
            u = user_ids[(i - burst_at) % 12]
            item = {"message": message(c, u, text=rng.choice(NEGATIVE))}
        elif spam_at <= i < spam_at + 20:
            kind = "spam_wave"
            c = chat_ids[1]
            u = user_ids[200 + (i - spam_at)]
            item = {"message": message(c, u, text=SPAM, entities=[{"type": "url", "offset": 25, "length": 31}])}
        else:
            r = rng.random()
            if r < 0.05:
                kind, item = "checkin", {"message": message(c, u, text="签到")}
            elif r < 0.15:
                kind, item = "faq", {"message": message(c, u, text=rng.choice(FAQ_QUESTIONS))}
            elif r < 0.25 and recent[c]:
                kind = "reply"
                target = rng.choice(recent[c])
                msg = message(c, u, text=rng.choice(CHATTER))
                msg["reply_to_message"] = {"message_id": target, "date": ts, "chat": chat(c),
                                           "from": user(rng.choice(user_ids)), "text": "…"}
                item = {"message": msg}
            elif r < 0.28:
                kind = "sticker"
                item = {"message": message(c, u, sticker={
                    "file_id": "CAACAgIAAxk", "file_unique_id": "AgAD", "type": "regular", "width": 512,
                    "height": 512, "is_animated": False, "is_video": False})}
            elif r < 0.30:
                kind = "photo"
                item = {"message": message(c, u, caption="晒单！", photo=[
                    {"file_id": f"P{i}", "file_unique_id": f"p{i}", "width": 800, "height": 600}])}
            elif r < 0.33:
                kind = "command"
                cmd = rng.choice(("/points", "/top", "/help", "/rules"))
                item = {"message": message(c, u, text=cmd, entities=[
                    {"type": "bot_command", "offset": 0, "length": len(cmd)}])}
            elif r < 0.35:
                kind = "join"
                newcomer = 500_000 + i
                item = {"chat_member": {
                    "chat": chat(c), "from": user(newcomer), "date": ts,
                    "old_chat_member": {"status": "left", "user": user(newcomer)},
                    "new_chat_member": {"status": "member", "user": user(newcomer)},
                }}
            else:
                kind = "chatter"
                text = rng.choice(CHATTER)
                if rng.random() < 0.1:
                    text = text * rng.randint(2, 8)
                item = {"message": message(c, u, text=text)}
        item["update_id"] = uid
        uid += 1
        kinds[kind] = kinds.get(kind, 0) + 1
        out.append(item)
    return Traffic(out, chat_ids, user_ids, kinds)
