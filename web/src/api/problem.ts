import type { components } from "../../generated/schema";

export type Problem = components["schemas"]["Problem"];

/** An answer the API refused: its status and the problem document (RFC 9457) it sent. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }

  get code(): string {
    return this.problem.code;
  }
}

/** The problem a failed answer carries, or one made up for an answer that is not a problem document. */
export function toProblem(status: number, body: unknown): Problem {
  if (body !== null && typeof body === "object" && "code" in body && typeof body.code === "string") {
    return body as Problem;
  }
  return {
    type: "about:blank",
    title: status === 0 ? "Network error" : `HTTP ${status}`,
    status,
    code: status === 0 ? "network_error" : "unexpected_answer",
  };
}

/** What `openapi-fetch` answers: the data, or the error body with the response. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful answer; throws an [`ApiError`] for any other. */
export async function unwrap<T>(call: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await call;
  } catch (cause) {
    if (cause instanceof ApiError) throw cause;
    throw new ApiError(0, toProblem(0, null));
  }
  if (answer.error !== undefined || !answer.response.ok) {
    throw new ApiError(answer.response.status, toProblem(answer.response.status, answer.error));
  }
  return answer.data as T;
}
