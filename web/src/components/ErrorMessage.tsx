import { ApiError } from "../api/problem";
import { describeError } from "../i18n";

/** An API failure in words, announced to screen readers; field errors listed under it. */
export function ErrorMessage({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const fields = error instanceof ApiError ? (error.problem.errors ?? []) : [];
  return (
    <div role="alert" className="error">
      <p>{describeError(error)}</p>
      {fields.length > 0 && (
        <ul>
          {fields.map((field) => (
            <li key={`${field.field}:${field.reason}`}>{field.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
