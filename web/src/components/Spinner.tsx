import { useTranslation } from "react-i18next";

/** The progress indicator for anything slower than a moment. */
export function Spinner({ label }: { label?: string }) {
  const { t } = useTranslation();
  return (
    <span className="spinner" role="status" aria-live="polite">
      <span className="spinner-dot" aria-hidden="true" />
      {label ?? t("app.loading")}
    </span>
  );
}
