"""Wire models shared by several resources."""

from pydantic import BaseModel


class UsageOut(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class ErrorOut(BaseModel):
    error: str
    detail: str | list | dict | None = None
