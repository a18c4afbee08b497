"""The demo: sample cases of each category walked through the whole stack (``yekuo demo``)."""
