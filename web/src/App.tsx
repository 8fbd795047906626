import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { type ReactNode, Suspense, lazy, useEffect, useState } from "react";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { ApiError } from "./api/problem";
import { hasRefreshToken, renew } from "./auth/session";
import { useSession } from "./auth/useSession";
import { Spinner } from "./components/Spinner";
import { applyLanguage } from "./i18n";
// The inbox is what a signed-in agent sees first: in the first load, not behind a lazy boundary (React
// holds a suspended boundary's reveal back by up to 300 ms).
import InboxPage from "./pages/InboxPage";
import { LoginPage } from "./pages/LoginPage";
import { Shell } from "./pages/Shell";
import { SignupPage } from "./pages/SignupPage";

const ConversationPage = lazy(() => import("./pages/ConversationPage"));
const SearchPage = lazy(() => import("./pages/SearchPage"));
const SettingsPage = lazy(() => import("./pages/settings/SettingsPage"));
const AcceptInvitationPage = lazy(() => import("./pages/AcceptInvitationPage"));

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A refusal is an answer, not a hiccup: only network failures and 5xx are retried.
      retry: (failures, error) => failures < 2 && !(error instanceof ApiError && error.status < 500 && error.status > 0),
      staleTime: 10_000,
    },
  },
});

/** Renews a session kept from an earlier visit before anything is shown. */
function useRestoredSession(): boolean {
  const [restoring, setRestoring] = useState(hasRefreshToken);
  useEffect(() => {
    if (!restoring) return;
    renew()
      .catch(() => null)
      .finally(() => setRestoring(false));
  }, [restoring]);
  return restoring;
}

function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  if (!session) return <Navigate to="/login" replace />;
  return children;
}

function Routed() {
  const restoring = useRestoredSession();
  const session = useSession();
  useEffect(() => {
    if (session) applyLanguage(session.user.language);
  }, [session]);
  if (restoring) {
    return (
      <main className="auth-page">
        <Spinner />
      </main>
    );
  }
  return (
    <Suspense fallback={<Spinner />}>
      <Routes>
        <Route path="/login" element={session ? <Navigate to="/" replace /> : <LoginPage />} />
        <Route path="/signup" element={session ? <Navigate to="/" replace /> : <SignupPage />} />
        {/* The link an owner sends: /invitations/accept#<token> (the token never reaches a server log). */}
        <Route path="/invitations/accept" element={<AcceptInvitationPage />} />
        <Route
          element={
            <RequireSession>
              <Shell />
            </RequireSession>
          }
        >
          <Route path="/" element={<InboxPage />}>
            <Route path="conversations/:id" element={<ConversationPage />} />
          </Route>
          <Route path="/search" element={<SearchPage />} />
          <Route path="/settings/*" element={<SettingsPage />} />
        </Route>
        <Route path="*" element={<Navigate to="/" replace />} />
      </Routes>
    </Suspense>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Routed />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
