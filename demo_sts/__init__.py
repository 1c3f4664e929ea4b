"""The demo STS and the demo round trip (``python -m demo_sts.roundtrip``)."""
