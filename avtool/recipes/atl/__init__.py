"""ATL recipe (audio to lyrics): lyric generator, BLEU, genre classifier, report.

- `generator`: `train lyrics` (the §2.2 model on the songs' clips and cleaned lines) and
  `evaluate lyrics` (greedy continuations of each held-out line, BLEU on token lists, and
  sampled lyrics per song for the genre classifier).
- `genre`: `train genre` / `evaluate genre` on any lyrics CSV (the §2.3 LSTM or a TF-IDF
  baseline) and `evaluate genre-generated` (the classifier on generated lyrics).
- `report`: `report atl`, everything above in one page.
"""
