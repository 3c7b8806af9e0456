"""Upload answers that store no record and that the dashboard counts, by problem type (the
gateway reports them, the recorder accepts only these: a fixed, small set of counter keys)."""

UPLOAD_OUTCOMES = frozenset({
    "not-a-digit", "no-digit-found", "too-many-digits", "empty-image", "corrupt-image", "not-an-image",
    "image-too-large", "request-too-large", "missing-image", "malformed-form", "unsupported-media-type",
    "dependency-unavailable", "dependency-failed", "overloaded", "internal-error",
})  # fmt: skip
