"""Sends through relaymail -bd with Python's smtplib to a recipient the
smarthost refuses, as an application would (issue 11).

usage: python3 smtplib_refused.py HOST PORT

First to good@ and bad@ (smtplib returns the refused ones), then to bad@
alone (smtplib raises SMTPRecipientsRefused). Prints one line of JSON.
"""

import json
import smtplib
import sys

host, port = sys.argv[1], int(sys.argv[2])
result = {}
body = "Subject: refused\r\n\r\nbody\r\n"
with smtplib.SMTP(host, port, timeout=30) as s:
    refused = s.sendmail("app@example.com", ["good@example.com", "bad@example.com"], body)
    result["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    try:
        s.sendmail("app@example.com", ["bad@example.com"], body)
        result["raised"] = None
    except smtplib.SMTPRecipientsRefused as e:
        result["raised"] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
print(json.dumps(result))
