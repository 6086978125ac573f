<?php
// Sends one message through a sendmail command with a real PHP mailer
// library from Debian's packages, as an application would.
//
// usage: php mailer.php LIBRARY COMMAND SENT_FILE
//   LIBRARY   symfony (php-symfony-mailer) or swift (php-swiftmailer)
//   COMMAND   the sendmail command line, e.g. "/usr/sbin/sendmail -bs"
//   SENT_FILE where to write the message as the library generated it
//
// Prints one line of JSON: {"ok":true,...} or {"ok":false,"error":"..."}.

error_reporting(E_ALL & ~E_DEPRECATED);

[$_, $library, $command, $sentFile] = $argv;

$subject = "Grüße aus Köln – ünïcödé ✓" . str_repeat(' long subject', 6);
$text = "First line.\n.A line that starts with a dot\n..two dots\nFrom the start of a line\n"
    . "Ünïcödé body line: Grüße\n" . str_repeat("0123456789", 120) . "\nLast line.\n";

function out(array $v): void
{
    echo json_encode($v, JSON_UNESCAPED_SLASHES), "\n";
}

try {
    if ($library === 'symfony') {
        require_once '/usr/share/php/Symfony/Component/Mailer/autoload.php';
        $transport = new Symfony\Component\Mailer\Transport\SendmailTransport($command);
        $email = (new Symfony\Component\Mime\Email())
            ->from(new Symfony\Component\Mime\Address('app@example.com', 'The App'))
            ->to('to@example.com')
            ->cc('cc@example.com')
            ->bcc('hidden@example.com')
            ->subject($subject)
            ->text($text);
        $sent = $transport->send($email);
        file_put_contents($sentFile, $sent->toString());
        out(['ok' => true, 'id' => $sent->getMessageId(), 'debug' => $sent->getDebug(),
             'subject' => $subject, 'text' => $text]);
    } elseif ($library === 'swift') {
        require_once '/usr/share/php/Swift/autoload.php';
        $transport = new Swift_SendmailTransport($command);
        $mailer = new Swift_Mailer($transport);
        $message = (new Swift_Message($subject))
            ->setFrom(['app@example.com' => 'The App'])
            ->setTo(['to@example.com'])
            ->setCc(['cc@example.com'])
            ->setBcc(['hidden@example.com'])
            ->setBody($text, 'text/plain', 'utf-8');
        // Before send: a -t send gives the message a new Message-ID after.
        file_put_contents($sentFile, $message->toString());
        $failed = [];
        $n = $mailer->send($message, $failed);
        out(['ok' => $n === 3 && !$failed, 'accepted' => $n, 'failed' => $failed,
             'subject' => $subject, 'text' => $text]);
    } else {
        throw new InvalidArgumentException("unknown library $library");
    }
} catch (Throwable $e) {
    out(['ok' => false, 'error' => get_class($e) . ': ' . $e->getMessage()]);
}
