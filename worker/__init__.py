"""The arq worker: batch job processing and the minute sweep."""
