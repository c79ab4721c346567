"""The industry's formats: GS1 EPCIS 2.0 and the UN Transparency Protocol, out and in."""
