"""What people look at to judge results: the HTML report, its charts and views, and the blind A/B
study with its statistics."""
