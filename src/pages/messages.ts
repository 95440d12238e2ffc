/**
 * What a person reads when something went wrong or worked: Better Auth's error codes (from its
 * JSON answers), the codes a provider's callback puts in `?error=`, and the pages' own notices.
 * Pages show only these texts, never a code's description from a query string, so a crafted
 * link cannot put words on the page.
 */
const ERRORS: Record<string, string> = {
  // Better Auth's answers (BASE_ERROR_CODES)
  INVALID_EMAIL_OR_PASSWORD: "That e-mail and password do not match an account.",
  INVALID_EMAIL: "Please enter a valid e-mail address.",
  INVALID_PASSWORD: "Your current password is not correct.",
  PASSWORD_TOO_SHORT: "That password is too short: use at least 8 characters.",
  PASSWORD_TOO_LONG: "That password is too long: use at most 128 characters.",
  USER_ALREADY_EXISTS: "An account with this e-mail already exists. Sign in instead.",
  USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL: "An account with this e-mail already exists. Sign in instead.",
  EMAIL_NOT_VERIFIED: "Please verify your e-mail address first: follow the link we sent you, or send a new one.",
  INVALID_TOKEN: "This link is not valid any more: it was used already or has expired. Ask for a new one.",
  TOKEN_EXPIRED: "This link has expired. Ask for a new one.",
  USER_NOT_FOUND: "There is no account for this link any more.",
  SESSION_EXPIRED: "For your security, sign in again to do this.",
  SESSION_NOT_FRESH: "For your security, sign in again to do this.",
  FAILED_TO_UNLINK_LAST_ACCOUNT: "This is your only way to sign in: link another one before you unlink it.",
  ACCOUNT_NOT_FOUND: "That sign-in method is not linked to your account.",
  EMAIL_ALREADY_VERIFIED: "This e-mail address is already verified.",
  VALIDATION_ERROR: "Please fill in every field.",
  EMAIL_NOT_SENT: "We could not send the e-mail. Please try again later.",
  RESET_PASSWORD_DISABLED: "Password reset is not available here. Ask your administrator.",
  VERIFICATION_EMAIL_NOT_ENABLED: "E-mail verification is not available here. Ask your administrator.",
  SOCIAL_ACCOUNT_ALREADY_LINKED: "That account is already linked.",
  LINKED_ACCOUNT_ALREADY_EXISTS: "That account is already linked.",
  // Better Auth's admin plugin: a banned user signing in (with a password or a provider)
  BANNED_USER: "This account is suspended. If you think that is a mistake, contact your administrator.",
  // A provider's callback (`?error=`), Better Auth's and OAuth's own codes
  access_denied: "Sign-in was cancelled at the provider. Try again, or choose another way to sign in.",
  state_mismatch: "That sign-in attempt could not be checked (it may have been started in another tab, or expired). Please try again.",
  state_security_mismatch: "That sign-in attempt could not be checked (it may have been started in another tab, or expired). Please try again.",
  please_restart_the_process: "That sign-in attempt could not be checked (it may have been started in another tab, or expired). Please try again.",
  invalid_code: "The provider's answer could not be used. Please try again.",
  no_code: "The provider's answer could not be used. Please try again.",
  issuer_mismatch: "The provider's answer could not be used. Please try again.",
  issuer_missing: "The provider's answer could not be used. Please try again.",
  nonce_binding_missing: "The provider's answer could not be used. Please try again.",
  unable_to_get_user_info: "The provider did not tell us who you are. Please try again later.",
  email_not_found: "The provider did not share an e-mail address, which this app needs.",
  email_not_verified: "The provider has not verified your e-mail address, so it cannot be used here.",
  account_not_linked: "An account with this e-mail already exists. Sign in with your password, then link the provider on your account page.",
  unable_to_link_account: "That account could not be linked.",
  account_already_linked_to_different_user: "That provider account is linked to another user.",
  email_does_not_match: "That provider account uses another e-mail address than yours.",
  oauth_provider_not_found: "That sign-in provider is not configured.",
  // The pages' own
  PROVIDER_UNAVAILABLE: "The sign-in provider could not be reached. Please try again later.",
  RATE_LIMITED: "Too many attempts. Please wait a minute and try again.",
  SERVICE_UNAVAILABLE: "Sign-in is unavailable right now. Please try again shortly.",
  FORM_EXPIRED: "This form has expired. Please try again.",
};

const GENERIC_ERROR = "Something went wrong. Please try again.";

const NOTICES: Record<string, string> = {
  "signed-out": "You are signed out.",
  "password-reset": "Your password was changed. Sign in with the new one.",
  "reset-sent": "If an account exists for that address, a link to reset its password is on its way.",
  "verification-sent": "We sent you a link: open it to verify your e-mail address.",
  "password-changed": "Your password was changed.",
  "name-changed": "Your name was saved.",
  "session-revoked": "That session was signed out.",
  linked: "The sign-in method was linked.",
  unlinked: "The sign-in method was unlinked.",
};

/** The readable text for an error code; unknown codes get a generic line (details are in the log). */
export function errorMessage(code: string | null | undefined): string | undefined {
  if (!code) return undefined;
  // Own keys only: "?error=constructor" must not find Object.prototype's.
  return Object.hasOwn(ERRORS, code) ? ERRORS[code]! : GENERIC_ERROR;
}

export function noticeMessage(code: string | null | undefined): string | undefined {
  return code && Object.hasOwn(NOTICES, code) ? NOTICES[code] : undefined;
}
