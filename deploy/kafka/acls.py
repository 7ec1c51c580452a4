"""The secure broker's ACLs (deploy/kafka.sh start in secure mode): idempotent.

    python deploy/kafka/acls.py HOST:PORT CLIENT_DIR

CLIENT_DIR holds ca.pem and the users' password files (see deploy/kafka/secure.sh); the
ACLs are created as the admin (a super user). enricher may do everything the stage needs
(read, write and create topics, use consumer groups); reader may read and describe topics
and groups but write nothing (a run as reader stops at its first write: exit 3).
"""

import logging
import sys
from pathlib import Path

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

logging.disable(logging.CRITICAL)
server, client = sys.argv[1], Path(sys.argv[2])
GRANTS = {
    "enricher": [
        (ResourceType.TOPIC, "*", ACLOperation.ALL),
        (ResourceType.GROUP, "*", ACLOperation.ALL),
        (ResourceType.CLUSTER, "kafka-cluster", ACLOperation.IDEMPOTENT_WRITE),
        (ResourceType.CLUSTER, "kafka-cluster", ACLOperation.DESCRIBE),
    ],
    "reader": [
        (ResourceType.TOPIC, "*", ACLOperation.READ),
        (ResourceType.TOPIC, "*", ACLOperation.DESCRIBE),
        (ResourceType.GROUP, "*", ACLOperation.READ),
        (ResourceType.GROUP, "*", ACLOperation.DESCRIBE),
    ],
}
acls = [
    ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW, ResourcePattern(kind, name))
    for user, grants in GRANTS.items()
    for kind, name, operation in grants
]
admin = KafkaAdminClient(
    bootstrap_servers=server,
    security_protocol="SASL_SSL",
    ssl_cafile=str(client / "ca.pem"),
    sasl_mechanism="SCRAM-SHA-512",
    sasl_plain_username="admin",
    sasl_plain_password=(client / "KAFKA_ADMIN_PASSWORD").read_text(),
    request_timeout_ms=10_000,
)
try:
    result = admin.create_acls(acls)
finally:
    admin.close()
if result.get("failed"):
    sys.exit(f"creating ACLs failed: {result['failed']}")
