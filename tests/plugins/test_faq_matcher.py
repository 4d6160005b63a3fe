"""FAQ matcher, keyword grammar, buttons and entry validation (pure logic, no Telegram, no DB)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from aiogram.types import MessageEntity

from bot.nlp import NlpService
from bot.textnorm import TextNormalizer
from plugins.faq.cli import ImportError_, parse_csv, parse_toml, prepare_items, to_csv, to_toml
from plugins.faq.matcher import (
    CONTAINS,
    EXACT,
    REGEX,
    WORD,
    ChatMatcher,
    EntryData,
    FaqError,
    Hit,
    compile_pattern,
    match_form,
    token_bounds,
)
from plugins.faq.parsing import (
    extract_buttons,
    html_slice,
    parse_keywords,
    prepare_entry,
)

NORMALIZER = TextNormalizer()
normalize = NORMALIZER.normalize


@functools.cache
def shared_nlp() -> NlpService:
    """One NlpService with jieba built (about 1 s) for every FAQ test that needs words."""
    service = NlpService(normalizer=NORMALIZER)
    _ = service.tokenizer
    return service


@pytest.fixture
def nlp() -> NlpService:
    return shared_nlp()


def entry(eid: int, mode: str, *keywords: str, reply: str = "") -> EntryData:
    prepared = prepare_entry(list(keywords), mode, reply or f"answer {eid}", normalize)
    return EntryData(eid, mode, tuple(prepared.keywords), tuple(prepared.norms), prepared.reply_html)


def matcher(*entries: EntryData) -> ChatMatcher:
    return ChatMatcher.build(entries)


def ask(m: ChatMatcher, text: str, nlp: NlpService | None = None) -> Hit | None:
    normalized = normalize(text)
    form = match_form(normalized)
    bounds: Callable[[str], set[int]] | None = None
    if nlp is not None:
        def bounds(f: str) -> set[int]:
            return token_bounds(f, nlp.tokenize(f))
    return m.match(form, normalized, bounds)


def answered(m: ChatMatcher, text: str, nlp: NlpService | None = None) -> int | None:
    hit = ask(m, text, nlp)
    return hit.entry.id if hit else None


# ---- match form ---------------------------------------------------------------------------------
def test_match_form_drops_punctuation_and_keeps_latin_word_gaps() -> None:
    assert match_form(normalize("怎麼 退貨？")) == "怎么退货"
    assert match_form(normalize("How  to buy iPhone 15?")) == "how to buy iphone 15"
    assert match_form(normalize("ＶＩＰ会员 怎么 开通！！😀")) == "vip会员怎么开通"
    assert match_form(normalize("？？ 。。")) == ""


# ---- modes ----------------------------------------------------------------------------------------
def test_contains_mode_matches_inside_a_chinese_sentence() -> None:
    m = matcher(entry(1, CONTAINS, "发货"))
    assert answered(m, "请问你们一般什么时候发货呀") == 1
    assert answered(m, "我想退款") is None


def test_traditional_and_full_width_input_match_simplified_keywords() -> None:
    m = matcher(entry(1, CONTAINS, "优惠券怎么用"), entry(2, CONTAINS, "VIP"))
    assert answered(m, "優惠券怎麼用？") == 1
    assert answered(m, "优惠券 怎么 用") == 1  # spaces and punctuation do not matter
    assert answered(m, "ｖｉｐ 多少钱") == 2
    # The keyword side is normalized too: a traditional keyword matches simplified text.
    m2 = matcher(entry(3, CONTAINS, "發貨多久"))
    assert answered(m2, "发货多久啊") == 3


def test_latin_keywords_keep_word_boundaries() -> None:
    m = matcher(entry(1, CONTAINS, "vip"), entry(2, CONTAINS, "how to"))
    assert answered(m, "开通VIP要多少钱") == 1
    assert answered(m, "vipshop 怎么样") is None
    assert answered(m, "How to buy?") == 2
    assert answered(m, "show tomorrow") is None


def test_exact_mode_needs_the_whole_message() -> None:
    m = matcher(entry(1, EXACT, "客服"))
    assert answered(m, "客服") == 1
    assert answered(m, "客服！！") == 1  # punctuation is not part of the message's words
    assert answered(m, "客服在吗") is None


def test_regex_mode_runs_on_normalized_text() -> None:
    m = matcher(entry(1, REGEX, r"^(怎么|如何)退(货|款)"), entry(2, REGEX, r"\d{11}"))
    assert answered(m, "怎麼退貨呀") == 1  # traditional input, simplified pattern
    assert answered(m, "请问怎么退货") is None  # anchored
    assert answered(m, "我的手机 13800138000 收不到") == 2
    assert answered(m, "你好") is None


def test_regex_pattern_written_with_full_width_and_traditional_chars() -> None:
    m = matcher(entry(1, REGEX, r"發貨了嗎？$"))
    assert answered(m, "发货了吗?") == 1
    assert answered(m, "發貨了嗎？") == 1


def test_word_mode_matches_whole_jieba_words_only(nlp: NlpService) -> None:
    m = matcher(entry(1, WORD, "发货"))
    assert answered(m, "你们什么时候发货", nlp) == 1
    assert answered(m, "发货单在哪里看", nlp) is None  # 发货单 is one word
    assert answered(m, "批发货源有吗", nlp) is None  # 批发 + 货源
    # The same keyword in contains mode matches inside the longer word.
    assert answered(matcher(entry(2, CONTAINS, "发货")), "发货单在哪里看") == 2


def test_word_mode_keyword_spanning_several_tokens(nlp: NlpService) -> None:
    m = matcher(entry(1, WORD, "几天到"))
    assert answered(m, "几天到啊", nlp) == 1
    assert answered(m, "十几天到货了", nlp) is None


def test_word_mode_is_not_verified_without_a_hit(nlp: NlpService) -> None:
    calls: list[str] = []
    m = matcher(entry(1, WORD, "发货"))

    def bounds(form: str) -> set[int]:
        calls.append(form)
        return token_bounds(form, nlp.tokenize(form))

    assert m.match(match_form(normalize("今天天气不错")), normalize("今天天气不错"), bounds) is None
    assert calls == []  # jieba is only asked when the automaton hit a word-mode keyword


def test_synonyms_reach_the_same_entry() -> None:
    m = matcher(entry(1, CONTAINS, "多久到", "几天到", "什么时候发货"), entry(2, CONTAINS, "退货"))
    for question in ("大概多久到呀", "几天到？", "你们什么时候发货"):
        assert answered(m, question) == 1
    assert answered(m, "怎么退货") == 2


# ---- most specific wins -------------------------------------------------------------------------------
def test_longer_keyword_wins_over_shorter() -> None:
    m = matcher(entry(1, CONTAINS, "发货"), entry(2, CONTAINS, "发货多久"))
    assert answered(m, "一般发货多久") == 2
    assert answered(m, "发货了吗") == 1


def test_exact_wins_over_everything() -> None:
    m = matcher(entry(1, CONTAINS, "退"), entry(2, EXACT, "退货"), entry(3, CONTAINS, "货"))
    assert answered(m, "退货") == 2
    assert answered(m, "退货吗") == 1  # exact no longer applies; equal-length contains: earliest start


def test_regex_is_only_a_fallback() -> None:
    m = matcher(entry(1, REGEX, "退.*款"), entry(2, CONTAINS, "退款"))
    assert answered(m, "怎么退款") == 2
    assert answered(m, "退了钱款没到") == 1


def test_ties_go_to_the_earliest_keyword_then_the_oldest_entry() -> None:
    m = matcher(entry(1, CONTAINS, "退货"), entry(2, CONTAINS, "换货"))
    assert answered(m, "换货还是退货") == 2
    assert answered(m, "退货还是换货") == 1


def test_a_word_hit_that_cannot_win_is_not_verified(nlp: NlpService) -> None:
    m = matcher(entry(1, WORD, "发货"), entry(2, CONTAINS, "发货多久"))
    called = []

    def bounds(form: str) -> set[int]:
        called.append(form)
        return token_bounds(form, nlp.tokenize(form))

    hit = m.match("发货多久", "发货多久", bounds)
    assert hit is not None and hit.entry.id == 2
    assert called == []


def test_one_answer_per_message_even_with_many_hits() -> None:
    m = matcher(*(entry(i, CONTAINS, kw) for i, kw in enumerate(["发货", "快递", "多久", "顺丰"], 1)))
    hit = ask(m, "顺丰快递发货多久")
    assert hit is not None and hit.entry.id in {1, 2, 3, 4}


# ---- regex guard --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [r"(a+)+b", r"(\w+\s?)*$", r"(a|ab)*c", r"(.*)*", r"\d+\d+\d+x"])
def test_catastrophic_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(FaqError):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", ["[", "(", r"(\w)\1", "a*", "x" * 201])
def test_bad_patterns_are_refused_with_a_reason(pattern: str) -> None:
    with pytest.raises(FaqError) as info:
        compile_pattern(pattern)
    assert info.value.message


@pytest.mark.parametrize(("pattern", "sample"), [
    (r"退(货|款)", "想退款"), (r"(\d{3}-)+\d{4}", "010-555-1234"), (r"^(怎么|如何).*(退货|退款)", "如何申请退款"),
    (r"vip\d*", "vip3"),
])
def test_ordinary_patterns_are_accepted(pattern: str, sample: str) -> None:
    assert compile_pattern(pattern, normalize).search(sample) is not None


# ---- keyword grammar ------------------------------------------------------------------------------------
def test_parse_plain_quoted_and_list_keywords() -> None:
    spec = parse_keywords("发货 48小时内发货")
    assert (spec.mode, spec.keywords) == (CONTAINS, ["发货"])
    assert "发货 48小时内发货"[spec.rest:] == "48小时内发货"

    spec = parse_keywords('"怎么 退货" 请看置顶')
    assert spec.keywords == ["怎么 退货"]
    spec = parse_keywords("“怎么 退货” 请看置顶")
    assert spec.keywords == ["怎么 退货"]

    text = "(发货多久, 几天到，什么时候发货) 48小时内发货"
    spec = parse_keywords(text)
    assert spec.keywords == ["发货多久", "几天到", "什么时候发货"]
    assert text[spec.rest:] == "48小时内发货"


def test_parse_mode_prefixes() -> None:
    assert parse_keywords("exact:客服 在的").mode == EXACT
    assert parse_keywords('"word:发货" 回复').mode == WORD
    assert parse_keywords("精确：(客服, 人工) 回复").keywords == ["客服", "人工"]
    spec = parse_keywords('regex:"^退(货|款) 呢" 回复')
    assert (spec.mode, spec.keywords) == (REGEX, ["^退(货|款) 呢"])
    spec = parse_keywords("regex:(退|换)货 回复")
    assert (spec.mode, spec.keywords) == (REGEX, ["(退|换)货"])


@pytest.mark.parametrize("args", ["", "   ", '"未闭合 回复', "(a, b 回复", "()", "(exact:a, word:b) x"])
def test_parse_errors(args: str) -> None:
    with pytest.raises(FaqError):
        parse_keywords(args)


# ---- entries -----------------------------------------------------------------------------------------------
def test_prepare_entry_rejects_bad_input() -> None:
    with pytest.raises(FaqError):
        prepare_entry(["？？"], CONTAINS, "x", normalize)  # empty once punctuation is gone
    with pytest.raises(FaqError):
        prepare_entry([""], CONTAINS, "x", normalize)
    with pytest.raises(FaqError):
        prepare_entry(["发货"], CONTAINS, "长" * 4097, normalize)
    with pytest.raises(FaqError):
        prepare_entry(["发货"], CONTAINS, "", normalize)
    with pytest.raises(FaqError):
        prepare_entry(["(a+)+"], REGEX, "x", normalize)
    with pytest.raises(FaqError):
        prepare_entry(["a", "b"], REGEX, "x", normalize)
    with pytest.raises(FaqError):
        prepare_entry(["发货"], CONTAINS, "<b>unclosed", normalize)
    assert prepare_entry(["发货"], CONTAINS, "长" * 4096, normalize).reply_html


def test_prepare_entry_dedupes_keywords_by_normal_form() -> None:
    e = prepare_entry(["發貨", "发货", "发 货"], CONTAINS, "x", normalize)
    assert e.keywords == ["發貨"] and e.norms == ["发货"]


def test_html_slice_keeps_formatting_of_the_reply_part() -> None:
    text = "/filter 发货 请看 😀 置顶的说明"
    start = text.index("请看")
    # "置顶" is bold; offsets count UTF-16 units (the emoji is 2).
    bold_at = len(text[: text.index("置顶")].encode("utf-16-le")) // 2
    ents = [MessageEntity(type="bot_command", offset=0, length=7), MessageEntity(type="bold", offset=bold_at, length=2)]
    assert html_slice(text, ents, start) == "请看 😀 <b>置顶</b>的说明"
    assert html_slice("/filter a <x> & y", None, 10) == "&lt;x&gt; &amp; y"


def test_rose_buttons_are_extracted() -> None:
    html_text, rows = extract_buttons(
        "48小时内发货\n[查物流](buttonurl://https://kuaidi.example/q?a=1&amp;b=2) "
        "[客服](buttonurl://t.me/shop_help:same)\n[官网](buttonurl://https://shop.example)"
    )
    assert html_text == "48小时内发货"
    assert rows == [
        [{"text": "查物流", "url": "https://kuaidi.example/q?a=1&b=2"},
         {"text": "客服", "url": "https://t.me/shop_help"}],
        [{"text": "官网", "url": "https://shop.example"}],
    ]
    with pytest.raises(FaqError):
        extract_buttons("x [坏](buttonurl://ftp://files.example/a)")


# ---- import / export formats -----------------------------------------------------------------------------------
def test_toml_and_csv_round_trip() -> None:
    toml_text = '''
[[faq]]
keywords = ["发货多久", "几天到"]
synonyms = ["什么时候发货"]
reply = "<b>48小时内</b>发货\\n\\"顺丰\\""
buttons = [[{ text = "物流", url = "https://kuaidi.example" }]]

[[faq]]
keywords = "^(怎么|如何)退(货|款)"
mode = "regex"
reply = "请看置顶"

[[faq]]
keywords = ["客服"]
mode = "exact"
reply = "在的"
media_type = "photo"
media_file_id = "AgADBAAD"
'''
    entries = prepare_items(parse_toml(toml_text), normalize)
    rows = [{"keywords": e.keywords, "mode": e.mode, "reply": e.reply_html, "buttons": e.buttons,
             "media_type": e.media_type, "media_file_id": e.media_file_id} for e in entries]
    assert rows[0]["keywords"] == ["发货多久", "几天到", "什么时候发货"]
    again_toml = prepare_items(parse_toml(to_toml(rows, -1001)), normalize)
    again_csv = prepare_items(parse_csv(to_csv(rows)), normalize)
    for again in (again_toml, again_csv):
        assert [(e.keywords, e.mode, e.reply_html, e.buttons, e.media_type, e.media_file_id) for e in again] == [
            (e.keywords, e.mode, e.reply_html, e.buttons, e.media_type, e.media_file_id) for e in entries
        ]


def test_import_reports_every_bad_row() -> None:
    csv_text = ("关键词,匹配方式,回复\n发货,包含,48小时\n,contains,空关键词\n退货,fuzzy,x\n(a+)+,regex,x\n"
                "发货,exact,重复\n")
    with pytest.raises(ImportError_) as info:
        prepare_items(parse_csv(csv_text), normalize)
    errors = info.value.errors
    assert len(errors) == 4
    assert all("CSV line" in e for e in errors)
