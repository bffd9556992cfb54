"""Genre clustering (the study's Table 1, Figures 1-3): K-Means / GMM, Hungarian accuracy with intervals, cluster-count scores, rogue songs, the listening map."""
