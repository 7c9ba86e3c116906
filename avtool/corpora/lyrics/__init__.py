"""ATL's scraped corpus: Spotify top tracks, YouTube audio and Genius lyrics per genre.

`builder` runs the stages and publishes the manifest contract; `spotify`, `youtube` and
`genius` hold one client each; `common` what they share.
"""
