#!/usr/bin/env bash
# Provisions a Keystone started by start-keystone.sh for a local Glance (the demo's optional
# Glance mode, or trying the glance target by hand): projects service + demo, the glance
# service user, a demo user with the member role, an application credential of that user, and
# the image endpoint; then writes a clouds.yaml with two clouds, "imgdist-demo" (password) and
# "imgdist-demo-appcred" (application credential). Needs curl and python3 (Keystone has it).
#
# Usage: provision.sh KEYSTONE_PORT GLANCE_PORT OUT_CLOUDS_YAML [ADMIN_PASSWORD] [GLANCE_SERVICE_PASSWORD]
# (the test suite does the same from test/helpers/glance-openstack.ts)
set -euo pipefail
KSP=${1:?usage: provision.sh KEYSTONE_PORT GLANCE_PORT OUT_CLOUDS_YAML}
GP=${2:?usage: provision.sh KEYSTONE_PORT GLANCE_PORT OUT_CLOUDS_YAML}
OUT=${3:?usage: provision.sh KEYSTONE_PORT GLANCE_PORT OUT_CLOUDS_YAML}
ADMIN_PASS=${4:-admin-pass}
GPASS=${5:-glance-pass}
DEMO_PASS=demo-pass
KS=http://127.0.0.1:$KSP/v3
GL=http://127.0.0.1:$GP

token() { # token USER PASSWORD PROJECT
  curl -fsS -o /dev/null -D - -H 'Content-Type: application/json' "$KS/auth/tokens" -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],
   \"password\":{\"user\":{\"name\":\"$1\",\"domain\":{\"id\":\"default\"},\"password\":\"$2\"}}},
   \"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r'
}
call() { # call METHOD PATH [JSON] -> body on stdout
  curl -fsS -X "$1" -H "X-Auth-Token: $TOK" -H 'Content-Type: application/json' "$KS$2" ${3:+-d "$3"}
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

TOK=$(token admin "$ADMIN_PASS" admin)
MEMBER=$(call GET '/roles?name=member' | field "d['roles'][0]['id']")
ADMIN=$(call GET '/roles?name=admin' | field "d['roles'][0]['id']")
SERVICE_P=$(call POST /projects '{"project":{"name":"service","domain_id":"default"}}' | field "d['project']['id']")
DEMO_P=$(call POST /projects '{"project":{"name":"demo","domain_id":"default"}}' | field "d['project']['id']")
GLANCE_U=$(call POST /users "{\"user\":{\"name\":\"glance\",\"password\":\"$GPASS\",\"domain_id\":\"default\"}}" | field "d['user']['id']")
call PUT "/projects/$SERVICE_P/users/$GLANCE_U/roles/$ADMIN" > /dev/null
DEMO_U=$(call POST /users "{\"user\":{\"name\":\"demo\",\"password\":\"$DEMO_PASS\",\"domain_id\":\"default\"}}" | field "d['user']['id']")
call PUT "/projects/$DEMO_P/users/$DEMO_U/roles/$MEMBER" > /dev/null
SVC=$(call POST /services '{"service":{"type":"image","name":"glance"}}' | field "d['service']['id']")
for i in public internal; do
  call POST /endpoints "{\"endpoint\":{\"service_id\":\"$SVC\",\"interface\":\"$i\",\"url\":\"$GL\",\"region_id\":\"RegionOne\"}}" > /dev/null
done
TOK=$(token demo "$DEMO_PASS" demo)
AC=$(call POST "/users/$DEMO_U/application_credentials" '{"application_credential":{"name":"imgdist-agent"}}')
AC_ID=$(echo "$AC" | field "d['application_credential']['id']")
AC_SECRET=$(echo "$AC" | field "d['application_credential']['secret']")
umask 077
cat > "$OUT" <<YAML
clouds:
  imgdist-demo:
    region_name: RegionOne
    interface: public
    auth:
      auth_url: $KS
      username: demo
      password: $DEMO_PASS
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
  imgdist-demo-appcred:
    auth_type: v3applicationcredential
    region_name: RegionOne
    auth:
      auth_url: $KS
      application_credential_id: $AC_ID
      application_credential_secret: $AC_SECRET
YAML
echo "wrote $OUT (clouds imgdist-demo, imgdist-demo-appcred)"
