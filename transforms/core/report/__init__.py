"""Self-contained HTML reports: inline SVG charts drawn in Python, no script, no CDN."""
