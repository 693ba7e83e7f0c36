"""The JSON door's plumbing: problem documents, the OpenAPI document, rate limits, guards, pagination."""
