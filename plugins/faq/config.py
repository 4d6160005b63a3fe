"""Config model of the faq plugin (``[plugins.faq]``, per-chat overrides, /set faq.<key>)."""

from __future__ import annotations

from pydantic import Field

from bot.plugin import PluginConfig


class FaqConfig(PluginConfig):
    # The same entry is not answered again in a chat within this many seconds (0: always answer).
    cooldown: int = Field(default=60, ge=0, le=86_400)
    # Do not auto-answer messages of group admins (they are usually the ones answering).
    ignore_admins: bool = False
    # Log questions that no entry answers, for /faqgaps.
    log_gaps: bool = True
    # /faqgaps looks at unanswered questions seen in the last N days ...
    gaps_days: int = Field(default=30, ge=1, le=365)
    # ... and lists the N most frequent.
    gaps_limit: int = Field(default=10, ge=1, le=50)
    # Most entries one chat may hold (the matcher is benchmarked at 2,000).
    max_entries: int = Field(default=5000, ge=1, le=20_000)
    # Most regex entries one chat may hold: regexes are tried one by one when no keyword matched.
    max_regex: int = Field(default=50, ge=0, le=500)
