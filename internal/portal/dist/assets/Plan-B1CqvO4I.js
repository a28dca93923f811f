import{j as r,T as t}from"./index-C5ChdGh-.js";function n(){return r.jsx(t,{order:2,children:"Plan"})}export{n as default};
