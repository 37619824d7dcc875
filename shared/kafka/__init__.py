"""Kafka plumbing shared by every service: topics, the producer, the consumer runner."""
