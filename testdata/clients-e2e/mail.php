<?php
// Sends one message with PHP's own mail(), which runs sendmail_path
// through /bin/sh -c with PHP's environment.
//
// usage: php -d sendmail_path="/usr/sbin/sendmail -t -i" mail.php
//
// Prints one line of JSON: {"ok":true|false,...}.

$subject = "Grüße ✓ raw UTF-8 subject";
// PHP >= 8 wants CRLF between additional headers; the body is LF.
$headers = "From: The App <app@example.com>\r\n"
    . "Cc: cc@example.com\r\n"
    . "Bcc: hidden@example.com\r\n"
    . "MIME-Version: 1.0\r\n"
    . "Content-Type: text/plain; charset=UTF-8\r\n"
    . "Content-Transfer-Encoding: 8bit";
$body = "Hello from mail().\n.leading dot\nGrüße\n" . str_repeat("x", 1200) . "\nend\n";
$ok = mail('to@example.com', $subject, $body, $headers);
echo json_encode(['ok' => $ok, 'subject' => $subject, 'body' => $body,
                  'error' => error_get_last()['message'] ?? ''], JSON_UNESCAPED_SLASHES), "\n";
