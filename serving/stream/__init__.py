"""``mlstack stream``: event-driven predictions on Kafka with the predictor's parser, contract and engine.

- ``records``: the input event and output record shapes, and every header name;
- ``decode``: event bytes -> parsed rows (the predictor's parser), or a dead-letter reason (``dlq``);
- ``router``: which variant (champion / challenger) scores a key, by a stable hash;
- ``models``: follows the model's MLflow aliases in the background and loads new versions;
- ``batch``: one micro-batch in, predictions + dead letters + payload rows out (pure);
- ``payloads``: payload rows as Arrow record batches on the payload topic;
- ``loop``: the consumer loop, one Kafka transaction per micro-batch (exactly once);
- ``store_writer``: payload topic -> the payload store, exactly once (file names from offset ranges);
- ``metrics``: Prometheus series of both loops.
"""
