/** The console's English text. `ja.ts` has the same keys (the type below makes sure of it). */
export const en = {
  app: { name: "OmniDesk", loading: "Loading…", offline: "Offline — reconnecting. Nothing is lost." },
  auth: {
    email: "E-mail",
    password: "Password",
    name: "Your name",
    accountName: "Workspace name",
    login: "Log in",
    loggingIn: "Logging in…",
    logout: "Log out",
    signup: "Sign up",
    signingUp: "Creating your workspace…",
    noAccount: "New to OmniDesk?",
    haveAccount: "Already have an account?",
    loginTitle: "Log in to OmniDesk",
    signupTitle: "Create your OmniDesk workspace",
    passwordHint: "8 to 128 characters.",
  },
  nav: { inbox: "Inbox", search: "Search", settings: "Settings", language: "Language" },
  inbox: {
    title: "Conversations",
    mine: "Mine",
    unassigned: "Unassigned",
    all: "All",
    status: "Status",
    inbox: "Inbox",
    label: "Label",
    anyInbox: "All inboxes",
    anyLabel: "All labels",
    empty: "No conversations here.",
    unread_one: "{{count}} unread message",
    unread_other: "{{count}} unread messages",
    noMessages: "No messages yet",
    loadMore: "Load more",
    contact: "Unnamed contact",
  },
  status: { open: "Open", pending: "Pending", resolved: "Resolved", snoozed: "Snoozed", all: "All statuses" },
  errors: {
    generic: "Something went wrong: {{detail}}",
    network_error: "The server cannot be reached. Check your connection and try again.",
    invalid_credentials: "The e-mail or password is not right.",
    login_rate_limited: "Too many attempts. Wait a minute and try again.",
    email_taken: "An account with this e-mail already exists. Log in instead.",
    validation_failed: "Some fields need attention.",
  },
} as const;

type Widen<T> = { [K in keyof T]: T[K] extends string ? string : Widen<T[K]> };

/** The shape every language's text has. */
export type Resources = Widen<typeof en>;
