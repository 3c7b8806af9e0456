"""The Recorder service: every recognition, image included, kept in Apache Cassandra."""
