"""Statistics and figures shared by several studies: clusterers, clustering metrics, intervals, projections, genre order and rogue songs, plots, table writers."""
