"""Config model of the welcome plugin (``[plugins.welcome]``, per-chat overrides, in-chat settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.plugin import PluginConfig

CaptchaMode = Literal["button", "math", "question", "off"]
CAPTCHA_MODES: tuple[str, ...] = ("button", "math", "question", "off")


class CaptchaQuestion(BaseModel):
    """An ops-written question: the member picks ``answer`` among ``options`` (shown shuffled)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=300)
    options: list[str] = Field(min_length=2, max_length=8)
    answer: str = Field(min_length=1, max_length=60)

    @field_validator("options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        cleaned = [o.strip() for o in value]
        if any(not o or len(o) > 60 for o in cleaned):
            raise ValueError("every option must be 1-60 characters")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("options must be distinct")
        return cleaned

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> CaptchaQuestion:
        if self.answer.strip() not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options")
        self.answer = self.answer.strip()
        return self


class WelcomeConfig(PluginConfig):
    # Greeting
    greet: bool = True
    # HTML with {name} {mention} {title} {count} {rules}; "" = the built-in default greeting.
    text: str = Field(default="", max_length=3000)
    rules: str = Field(default="", max_length=3500)
    skip_bots: bool = True
    # Captcha
    captcha: CaptchaMode = "button"
    captcha_timeout: int = Field(default=120, ge=15, le=3600)
    captcha_attempts: int = Field(default=3, ge=1, le=10)
    captcha_kick: bool = True
    captcha_questions: list[CaptchaQuestion] = Field(default_factory=list, max_length=50)
    # Raid merge: at most one welcome message per chat per window; 0 turns merging off.
    raid_window: float = Field(default=5.0, ge=0, le=120)
    raid_max_mentions: int = Field(default=30, ge=1, le=100)
    # Clean-up
    delete_welcome_after: int = Field(default=0, ge=0, le=7 * 86400)
    clean_service: bool = False
    clean_service_after: int = Field(default=0, ge=0, le=86400)

    @model_validator(mode="after")
    def _question_mode_needs_questions(self) -> WelcomeConfig:
        if self.captcha == "question" and not self.captcha_questions:
            raise ValueError("captcha = \"question\" needs at least one entry in captcha_questions")
        return self
