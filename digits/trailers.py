"""Response trailers that are part of the digits.v1 contract (documented in the .proto files)."""

# Recorder.Record: "true" when the answer is the record an earlier call with the same
# idempotency key made, not a new one.
REPLAYED = "digits-replayed"
