"""Music beyond the training domain (the study's Figure 5): where new sets of music land among the reference genres."""
