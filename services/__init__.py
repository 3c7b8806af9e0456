"""The three digits services, one package each: recognizer, recorder, gateway."""
