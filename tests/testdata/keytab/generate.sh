#!/bin/sh
# Regenerates the MIT-written keytabs used by src/krb/keytab.rs tests, with MIT ktutil
# (krb5-user). These hold TEST keys derived from the test passwords below; they are not secrets.
# Run from this directory: ./generate.sh   (then commit the .keytab files; timestamps change).
set -eu
rm -f mit_default_salt.keytab ad_computer_salt.keytab hole.keytab

# 1. Default (RFC 4120) salts: two principals, kvnos 5 and 6, every enctype kedge supports plus
#    one it does not (camellia128-cts-cmac), which the reader must skip and count.
#    Password for kvno 5: "Passw0rd-kvno5"; kvno 6: "Passw0rd-kvno6"; exchangeMDB (kvno 300, above 255, so only the 32-bit kvno field holds it): "Mdb-Secret!7".
{
  for e in aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 aes128-cts-hmac-sha256-128 \
           aes256-cts-hmac-sha384-192 arcfour-hmac camellia128-cts-cmac; do
    printf 'addent -password -p HTTP/outlook.contoso.com@CONTOSO.COM -k 5 -e %s\nPassw0rd-kvno5\n' "$e"
  done
  for e in aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96; do
    printf 'addent -password -p HTTP/outlook.contoso.com@CONTOSO.COM -k 6 -e %s\nPassw0rd-kvno6\n' "$e"
    printf 'addent -password -p exchangeMDB/outlook.contoso.com@CONTOSO.COM -k 300 -e %s\nMdb-Secret!7\n' "$e"
  done
  printf 'wkt mit_default_salt.keytab\nquit\n'
} | ktutil >/dev/null

# 2. The AD computer-account salt of an Exchange ASA (MS-KILE 3.1.1.2): realm CONTOSO.COM,
#    account EXCH2010ASA$ -> salt "CONTOSO.COMhostexch2010asa.contoso.com". Password "Asa-Pa55word!", kvno 3.
{
  for e in aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 arcfour-hmac; do
    printf 'addent -password -p EXCH2010ASA$@CONTOSO.COM -k 3 -e %s -s CONTOSO.COMhostexch2010asa.contoso.com\nAsa-Pa55word!\n' "$e"
  done
  printf 'wkt ad_computer_salt.keytab\nquit\n'
} | ktutil >/dev/null

# 3. A keytab with a deleted slot ("hole"), made the way MIT's krb5_kt_remove_entry does it:
#    the first record's size is negated and its body zeroed. Password "Hole-Test-1", kvno 2.
{
  printf 'addent -password -p host/hole.contoso.com@CONTOSO.COM -k 1 -e aes256-cts-hmac-sha1-96\nHole-Test-1\n'
  printf 'addent -password -p host/hole.contoso.com@CONTOSO.COM -k 2 -e aes256-cts-hmac-sha1-96\nHole-Test-1\n'
  printf 'wkt hole.keytab\nquit\n'
} | ktutil >/dev/null
/usr/bin/python3 - <<'PY'
import struct
b = bytearray(open("hole.keytab", "rb").read())
(size,) = struct.unpack(">i", b[2:6])
b[2:6] = struct.pack(">i", -size)
b[6:6 + size] = bytes(size)
open("hole.keytab", "wb").write(bytes(b))
PY

# klist listings with the keys, which the tests compare the parsed key bytes against.
for f in mit_default_salt ad_computer_salt hole; do klist -kteK "$f.keytab" > "$f.klist.txt"; done
