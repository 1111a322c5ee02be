"""The Hypatos operation catalog and the Celery task that runs any operation in it."""
