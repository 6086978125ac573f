"""Sends through relaymail -bd with Python's smtplib, as an application
that only knows SMTP to localhost would.

usage: python3 smtplib_client.py HOST PORT

First send_message() with To, Cc and Bcc (smtplib takes the recipients
from the headers and drops Bcc), then, on the same connection, one
pipelined transaction (RFC 2920) written with smtplib's own send() and
read back with getreply(). Prints one line of JSON.
"""

import json
import smtplib
import sys
from email.message import EmailMessage

host, port = sys.argv[1], int(sys.argv[2])
result = {}

msg = EmailMessage()
msg["From"] = "The App <app@example.com>"
msg["To"] = "to@example.com, Second <to2@example.com>"
msg["Cc"] = "cc@example.com"
msg["Bcc"] = "hidden@example.com"
msg["Subject"] = "Grüße from smtplib"
msg.set_content("line one\n.leading dot\nline three\n")

with smtplib.SMTP(host, port, timeout=30) as s:
    result["refused"] = s.send_message(msg)
    result["esmtp_features"] = sorted(s.esmtp_features)
    result["pipelining"] = s.has_extn("pipelining")

    # One write with MAIL, two RCPTs and DATA, then the four replies.
    s.send(b"RSET\r\nMAIL FROM:<pipe@example.com>\r\n"
           b"RCPT TO:<p1@example.com>\r\nRCPT TO:<p2@example.com>\r\nDATA\r\n")
    result["pipelined_replies"] = [s.getreply()[0] for _ in range(5)]
    s.send(b"Subject: pipelined\r\n\r\npipelined body\r\n..dot\r\n.\r\n")
    code, text = s.getreply()
    result["pipelined_final"] = [code, text.decode()]

print(json.dumps(result))
