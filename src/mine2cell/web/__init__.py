"""The battery-passport page served by ``mine2cell serve`` at ``/passports/{passport}``: one
self-contained HTML page (inline CSS and SVG, nothing fetched) with the verdict and summary first,
charts of the origin shares, the provenance graph and a QR code of the page's address; the QR code
alone at ``/passports/{passport}/qr.svg`` and ``qr.png`` for the battery's label.

Two tiers, as the API's: anyone sees the public one (shares by element and country, recycled
content, footprint, flag counts, the audit verdict, a graph aggregated by stage, material and
country); a read token adds facilities, lots, grams and the evidence of every event."""
