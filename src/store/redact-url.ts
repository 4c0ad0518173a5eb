/**
 * The one redactor of database URLs, for every log line, error and message that shows one: the
 * password in the user info (`user:pw@`) and in a `password` or `sslpassword` query parameter
 * become `***`. Works on a setting that is not a valid URL too (it is shown in the error).
 */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@?#]*):[^@/?#]*@/, "$1:***@").replace(/([?&](?:ssl)?password=)[^&#]*/gi, "$1***");
}
