"""Deep dreaming a genre (the study's Figure 4): optimise a waveform toward a genre's mean embedding."""
