# Sourced by deploy/kafka.sh in secure mode (LLM_ENRICH_KAFKA_SECURE=1, or `start --secure`):
# the broker's listener is SASL_SSL (SCRAM-SHA-512 over TLS) and ACLs are enforced.
#
# Made on first start, in the instance's state folder (mode 700):
#   tls/     a self-signed CA (ca.key, ca.pem) and the broker's key pair and PKCS12 keystore
#            (CN=localhost, SAN DNS:localhost, IP:127.0.0.1)
#   client/  what a client needs: ca.pem and one password file per user, named like the
#            environment variable a task's kafka.sasl_password_env would name, so that
#            LLM_ENRICH_SECRETS_DIR=<state>/client works as is:
#              KAFKA_ADMIN_PASSWORD     admin: super user (creates topics, ACLs)
#              KAFKA_ENRICHER_PASSWORD  enricher: reads, writes, creates topics and groups
#              KAFKA_READER_PASSWORD    reader: reads topics and groups, writes nothing
# The users are created when the storage is formatted (kafka-storage --add-scram); the ACLs
# by deploy/kafka/acls.py once the broker answers. `reset` deletes all of it.

TLS=$STATE/tls
CLIENT=$STATE/client
USERS=(admin enricher reader)

password_of() { cat "$CLIENT/KAFKA_${1^^}_PASSWORD"; }

# The CA, the broker's keystore and the users' passwords (once per state folder).
secure_material() {
  [[ -f $TLS/broker.p12 && -f $CLIENT/ca.pem ]] && return
  (
    umask 077
    rm -rf "$TLS" "$CLIENT"
    mkdir -p "$TLS" "$CLIENT"
    local user store_pw
    for user in "${USERS[@]}"; do  # alphanumeric: no quoting trouble in JAAS or --add-scram
      head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$CLIENT/KAFKA_${user^^}_PASSWORD"
    done
    store_pw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
    echo -n "$store_pw" >"$TLS/store.password"
    {
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=llm-enrich local CA" \
        -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$TLS/broker.key" -out "$TLS/broker.csr"
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TLS/broker.ext"
      openssl x509 -req -days 3650 -in "$TLS/broker.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
        -CAcreateserial -extfile "$TLS/broker.ext" -out "$TLS/broker.pem"
      openssl pkcs12 -export -name broker -in "$TLS/broker.pem" -inkey "$TLS/broker.key" \
        -certfile "$TLS/ca.pem" -out "$TLS/broker.p12" -passout "pass:$store_pw"
    } >"$TLS/openssl.log" 2>&1 || { cat "$TLS/openssl.log" >&2; exit 1; }
    cp "$TLS/ca.pem" "$CLIENT/ca.pem"
  )
}

# The listener part of server.properties.
secure_listeners() {
  cat <<CONF
listeners=SASL_SSL://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password_of admin)";
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$(cat "$TLS/store.password")
ssl.key.password=$(cat "$TLS/store.password")
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# The controller listener is PLAINTEXT on 127.0.0.1 only: the broker half of this node talks
# to the controller half there, unauthenticated, so its principal (ANONYMOUS) must be a super user.
super.users=User:admin;User:ANONYMOUS
CONF
}

# kafka-storage format arguments creating the SCRAM users.
secure_format_args() {
  local user
  for user in "${USERS[@]}"; do
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$(password_of "$user")]"
  done
}
